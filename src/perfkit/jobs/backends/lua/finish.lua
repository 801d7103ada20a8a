-- KEYS: active, delayed. ARGV: tag, now_s, retention s, then groups of 8:
-- id, token, status, result, error, traceback, run_at s, run_at ms (rounded up: the delayed score).
-- A retry (status 'queued') due by now_s is ready at once, else delayed. Stale tokens are ignored.
local now_s, retention = ARGV[2], tonumber(ARGV[3])
local requeued = false
for i = 4, #ARGV, 8 do
  local id, status = ARGV[i], ARGV[i + 2]
  local j = jk(id)
  local v = redis.call('HMGET', j, 'status', 'token')
  if v[1] == 'running' and v[2] == ARGV[i + 1] then
    redis.call('ZREM', KEYS[1], id)
    if ARGV[i + 4] ~= '' then redis.call('HSET', j, 'error', ARGV[i + 4]) end
    if ARGV[i + 5] ~= '' then redis.call('HSET', j, 'traceback', ARGV[i + 5]) end
    if status == 'queued' then
      redis.call('HSET', j, 'status', 'queued', 'run_at', ARGV[i + 6])
      if tonumber(ARGV[i + 6]) <= tonumber(now_s) then
        requeue(id, j)
        requeued = true
      else
        redis.call('ZADD', KEYS[2], ARGV[i + 7], id)
      end
    else
      if ARGV[i + 3] ~= '' then redis.call('HSET', j, 'result', ARGV[i + 3]) end
      if status == 'succeeded' then redis.call('HSET', j, 'progress', '1.0') end
      finish(id, j, status, now_s, retention)
    end
  end
end
if requeued then wake() end
return 1
