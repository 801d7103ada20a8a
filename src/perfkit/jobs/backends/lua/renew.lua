-- KEYS: active. ARGV: tag, now ms, lease ms, then id, token pairs. Returns the ids to stop.
local until_ms = tonumber(ARGV[2]) + tonumber(ARGV[3])
local stop = {}
for i = 4, #ARGV, 2 do
  local id = ARGV[i]
  local v = redis.call('HMGET', jk(id), 'status', 'token', 'cancel_requested')
  if v[1] == 'running' and v[2] == ARGV[i + 1] and v[3] ~= '1' then
    redis.call('ZADD', KEYS[1], 'XX', until_ms, id)
  else
    stop[#stop + 1] = id
  end
end
return stop
