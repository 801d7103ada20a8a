-- KEYS: active. ARGV: tag, now_s, retention s, then id, token pairs. Hands jobs back (shutdown).
for i = 4, #ARGV, 2 do
  local id = ARGV[i]
  local j = jk(id)
  local v = redis.call('HMGET', j, 'status', 'token', 'cancel_requested')
  if v[1] == 'running' and v[2] == ARGV[i + 1] then
    redis.call('ZREM', KEYS[1], id)
    if v[3] == '1' then
      finish(id, j, 'cancelled', ARGV[2], tonumber(ARGV[3]))
    else
      redis.call('HINCRBY', j, 'attempts', -1)
      redis.call('HSET', j, 'status', 'queued')
      redis.call('HDEL', j, 'started_at')
      requeue(id, j)
    end
  end
end
wake()
return 1
