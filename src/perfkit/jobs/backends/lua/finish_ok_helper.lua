-- Lua helper for FINISH_OK and CLAIM: records the id, token, result triples from ARGV[first] on as
-- succeeded; a triple whose token no longer holds the lease is ignored.
local function finish_ok(now_s, retention, first)
  local done = tag .. 'done:succeeded'
  local active = tag .. 'active'
  for i = first, #ARGV, 3 do
    local id = ARGV[i]
    local j = jk(id)
    local v = redis.call('HMGET', j, 'status', 'token', 'key')
    if v[1] == 'running' and v[2] == ARGV[i + 1] then
      redis.call('ZREM', active, id)
      redis.call('HSET', j, 'status', 'succeeded', 'completed_at', now_s, 'result', ARGV[i + 2],
                 'progress', '1.0')
      redis.call('ZADD', done, now_s, id)
      if v[3] then release_key(id, j) end
      redis.call('EXPIRE', j, retention)
    end
  end
end
