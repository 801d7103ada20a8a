-- KEYS: ready, delayed, keys. ARGV: tag, now ms (rounded down), then groups of 6: id, key or '', due ms
-- (run_at rounded up; now ms when already due), priority, spec, run_at s. `spec` is the job's immutable
-- part in one msgpack blob (task, payload, max_attempts, timeout, queued_at). Jobs are stored in order,
-- so a key repeated within one call goes to its first job.
-- Returns id, created (1/0) pairs: a key held by a queued or running job returns that job's id and 0;
-- then 1 when the queue's `registered` marker (60 s) was missing: the caller adds the queue to the
-- registry (`<p>:queues`), so a Redis that lost its data gets its registry back at the next enqueue.
local now = tonumber(ARGV[2])
local out = {}
local ready = false
for i = 3, #ARGV, 6 do
  local id, key = ARGV[i], ARGV[i + 1]
  local held = false
  if key ~= '' then
    held = redis.call('HGET', KEYS[3], key)
    if held then
      local st = redis.call('HGET', jk(held), 'status')
      if st ~= 'queued' and st ~= 'running' then held = false end
    end
  end
  if held then
    out[#out + 1] = held
    out[#out + 1] = 0
  else
    local j = jk(id)
    if tonumber(ARGV[i + 2]) > now then
      redis.call('HSET', j, 'id', id, 'spec', ARGV[i + 4], 'priority', ARGV[i + 3], 'status', 'queued',
                 'attempts', 0, 'run_at', ARGV[i + 5])
      redis.call('ZADD', KEYS[2], ARGV[i + 2], id)
    else
      local score = tonumber(ARGV[i + 3]) * 1e13 + redis.call('INCR', tag .. 'seq')
      redis.call('HSET', j, 'id', id, 'spec', ARGV[i + 4], 'priority', ARGV[i + 3], 'status', 'queued',
                 'attempts', 0, 'run_at', ARGV[i + 5], 'score', score)
      redis.call('ZADD', KEYS[1], score, id)
      ready = true
    end
    if key ~= '' then
      redis.call('HSET', KEYS[3], key, id)
      redis.call('HSET', j, 'key', key)
    end
    out[#out + 1] = id
    out[#out + 1] = 1
  end
end
if ready then wake() end
local register = redis.call('SET', tag .. 'registered', '1', 'NX', 'EX', 60)
out[#out + 1] = register and 1 or 0
return out
