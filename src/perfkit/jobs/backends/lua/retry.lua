-- KEYS: keys. ARGV: tag, id, now_s. Queues a failed, dead or cancelled job again.
local id = ARGV[2]
local j = jk(id)
local st = redis.pcall('HGET', j, 'status')  -- a key of the wrong type (corrupt) is not retried
if st ~= 'failed' and st ~= 'dead' and st ~= 'cancelled' then return 0 end
redis.call('ZREM', tag .. 'done:' .. st, id)
redis.call('PERSIST', j)
redis.call('HSET', j, 'status', 'queued', 'attempts', 0, 'stalls', 0, 'run_at', ARGV[3], 'progress', 0,
           'cancel_requested', 0)
redis.call('HDEL', j, 'completed_at', 'started_at', 'result', 'progress_message')
local key = redis.call('HGET', j, 'key')
if key then
  local held = redis.call('HGET', KEYS[1], key)
  local hst = held and redis.call('HGET', jk(held), 'status')
  if held and held ~= id and (hst == 'queued' or hst == 'running') then
    redis.call('HDEL', j, 'key')
  else
    redis.call('HSET', KEYS[1], key, id)
  end
end
requeue(id, j)
wake()
return 1
