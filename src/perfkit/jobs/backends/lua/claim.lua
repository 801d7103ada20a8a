-- KEYS: ready, delayed, active. ARGV: tag, now ms (rounded down), limit, lease ms, now_s, retention s,
-- then id, token, result triples of jobs that succeeded (FINISH_OK's, recorded first: the worker's
-- acknowledgements ride on its next claim). Promotes due delayed jobs (score <= now ms: never before
-- their run_at, as the scores are rounded up), then pops up to `limit` ready jobs under a lease;
-- returns the fields a worker needs of each (see redis.py `_claimed`). A job key that is not a hash
-- (written by hand, say) cannot be claimed: it goes to done:dead, where list() shows it as corrupt and
-- cleanup() deletes it, instead of failing the claim of every job with it; a field that is not a number
-- is left to the worker, which dead-letters that one job (see `_claimed`).
finish_ok(ARGV[5], tonumber(ARGV[6]), 7)
local now, limit = tonumber(ARGV[2]), tonumber(ARGV[3])
local function unreadable(id) redis.call('ZADD', tag .. 'done:dead', ARGV[5], id) end
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 1000)
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[2], id)
  local j = jk(id)
  local st = redis.pcall('HGET', j, 'status')
  if st == 'queued' then requeue(id, j) elseif type(st) == 'table' and st.err then unreadable(id) end
end
local popped = redis.call('ZPOPMIN', KEYS[1], limit)
local out = {}
local until_ms = now + tonumber(ARGV[4])
for i = 1, #popped, 2 do
  local id = popped[i]
  local j = jk(id)
  local v = redis.pcall('HMGET', j, 'status', 'attempts', 'spec', 'priority', 'key', 'run_at')
  if v.err then
    unreadable(id)
  elseif v[1] == 'queued' then
    local attempts = (tonumber(v[2]) or 0) + 1
    redis.call('HSET', j, 'status', 'running', 'attempts', attempts, 'token', attempts, 'started_at', ARGV[5])
    redis.call('ZADD', KEYS[3], until_ms, id)
    out[#out + 1] = {id, v[3], v[4], attempts, v[5], v[6]}
  end
end
if redis.call('ZCARD', KEYS[1]) > 0 then wake() else redis.call('DEL', tag .. 'wake') end
return out
