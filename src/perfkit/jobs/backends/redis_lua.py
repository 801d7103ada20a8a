"""Every Lua script of the Redis job backend, in one place. Each runs atomically on one queue's slot.

Common arguments: ARGV[1] is the queue's key tag (`{p:q:name}:`); job hashes are `tag .. 'job:' .. id`.
Times: `now` in ms for the zsets, `now_s` in seconds (as text) for the job record.
"""

# helper prelude shared by the scripts
_PRELUDE = """
local tag = ARGV[1]
local function jk(id) return tag .. 'job:' .. id end
local function wake() redis.call('LPUSH', tag .. 'wake', '1'); redis.call('LTRIM', tag .. 'wake', 0, 0) end
local function requeue(id, j)
  local score = redis.call('HGET', j, 'score')
  if not score then
    local prio = tonumber(redis.call('HGET', j, 'priority') or '2') or 2
    score = prio * 1e13 + redis.call('INCR', tag .. 'seq')
    redis.call('HSET', j, 'score', score)
  end
  redis.call('ZADD', tag .. 'ready', score, id)
end
local function release_key(id, j)
  local key = redis.call('HGET', j, 'key')
  if key and redis.call('HGET', tag .. 'keys', key) == id then redis.call('HDEL', tag .. 'keys', key) end
end
local function finish(id, j, status, now_s, retention)
  redis.call('HSET', j, 'status', status, 'completed_at', now_s)
  redis.call('ZADD', tag .. 'done:' .. status, now_s, id)
  release_key(id, j)
  redis.call('EXPIRE', j, retention)
end
"""

# Lua helper for FINISH_OK and CLAIM: records the id, token, result triples from ARGV[first] on as
# succeeded; a triple whose token no longer holds the lease is ignored.
_FINISH_OK = """
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
"""

# KEYS: ready, delayed, keys. ARGV: tag, now ms (rounded down), then groups of 6: id, key or '', due ms
# (run_at rounded up; now ms when already due), priority, spec, run_at s. `spec` is the job's immutable
# part in one msgpack blob (task, payload, max_attempts, timeout, queued_at). Jobs are stored in order,
# so a key repeated within one call goes to its first job.
# Returns id, created (1/0) pairs: a key held by a queued or running job returns that job's id and 0;
# then 1 when the queue's `registered` marker (60 s) was missing: the caller adds the queue to the
# registry (`<p>:queues`), so a Redis that lost its data gets its registry back at the next enqueue.
ENQUEUE = (
    _PRELUDE
    + """
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
"""
)

# KEYS: ready, delayed, active. ARGV: tag, now ms (rounded down), limit, lease ms, now_s, retention s,
# then id, token, result triples of jobs that succeeded (FINISH_OK's, recorded first: the worker's
# acknowledgements ride on its next claim). Promotes due delayed jobs (score <= now ms: never before
# their run_at, as the scores are rounded up), then pops up to `limit` ready jobs under a lease;
# returns the fields a worker needs of each (see redis.py `_claimed`). A job key that is not a hash
# (written by hand, say) cannot be claimed: it goes to done:dead, where list() shows it as corrupt and
# cleanup() deletes it, instead of failing the claim of every job with it; a field that is not a number
# is left to the worker, which dead-letters that one job (see `_claimed`).
CLAIM = (
    _PRELUDE
    + _FINISH_OK
    + """
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
"""
)

# KEYS: active. ARGV: tag, now ms, lease ms, then id, token pairs. Returns the ids to stop.
RENEW = (
    _PRELUDE
    + """
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
"""
)

# KEYS: active, delayed. ARGV: tag, now_s, retention s, then groups of 8:
# id, token, status, result, error, traceback, run_at s, run_at ms (rounded up: the delayed score).
# A retry (status 'queued') due by now_s is ready at once, else delayed. Stale tokens are ignored.
FINISH = (
    _PRELUDE
    + """
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
"""
)

# KEYS: active. ARGV: tag, now_s, retention s, then id, token, result triples: the common case of FINISH
# (succeeded), with 3 arguments per job instead of 7 and one HSET.
FINISH_OK = (
    _PRELUDE
    + _FINISH_OK
    + """
finish_ok(ARGV[2], tonumber(ARGV[3]), 4)
return 1
"""
)

# KEYS: active. ARGV: tag, now_s, retention s, then id, token pairs. Hands jobs back (shutdown).
RELEASE = (
    _PRELUDE
    + """
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
"""
)

# KEYS: active. ARGV: tag, now ms, now_s, retention s, max stalls. Requeues lapsed leases; returns the dead.
REAP = (
    _PRELUDE
    + """
local lapsed = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, 1000)
local dead = {}
for _, id in ipairs(lapsed) do
  redis.call('ZREM', KEYS[1], id)
  local j = jk(id)
  if redis.call('HGET', j, 'status') == 'running' then
    local stalls = redis.call('HINCRBY', j, 'stalls', 1)
    if redis.call('HGET', j, 'cancel_requested') == '1' then
      finish(id, j, 'cancelled', ARGV[3], tonumber(ARGV[4]))
    elseif stalls >= tonumber(ARGV[5]) then
      redis.call('HSET', j, 'error', 'lease lapsed ' .. stalls .. ' times: its worker died or hung each time')
      finish(id, j, 'dead', ARGV[3], tonumber(ARGV[4]))
      dead[#dead + 1] = redis.call('HGETALL', j)
    else
      redis.call('HSET', j, 'status', 'queued')
          requeue(id, j)
    end
  end
end
if #lapsed > 0 then wake() end
return dead
"""
)

# KEYS: ready, delayed. ARGV: tag, id, now_s, retention s. Returns the record after the change, or 0
# when the job key is not a hash (a corrupt job: the caller reads it as such).
CANCEL = (
    _PRELUDE
    + """
local id = ARGV[2]
local j = jk(id)
local st = redis.pcall('HGET', j, 'status')
if type(st) == 'table' and st.err then return 0 end
if not st then return nil end
if st == 'queued' then
  redis.call('ZREM', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
  finish(id, j, 'cancelled', ARGV[3], tonumber(ARGV[4]))
elseif st == 'running' then
  redis.call('HSET', j, 'cancel_requested', '1')
end
return redis.call('HGETALL', j)
"""
)

# KEYS: keys. ARGV: tag, id, now_s. Queues a failed, dead or cancelled job again.
RETRY = (
    _PRELUDE
    + """
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
"""
)

# KEYS: the job hash. ARGV: progress, message or ''. Only updates a job that exists.
PROGRESS = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'progress', ARGV[1])
if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], 'progress_message', ARGV[2]) end
return 1
"""

# KEYS: none beyond the tag's. ARGV: tag, before_s. Deletes finished jobs completed before `before`.
CLEANUP = (
    _PRELUDE
    + """
local removed = 0
for _, status in ipairs({'succeeded', 'failed', 'dead', 'cancelled'}) do
  local zkey = tag .. 'done:' .. status
  local old = redis.call('ZRANGEBYSCORE', zkey, '-inf', '(' .. ARGV[2], 'LIMIT', 0, 5000)
  for _, id in ipairs(old) do redis.call('DEL', jk(id)) end
  if #old > 0 then redis.call('ZREM', zkey, unpack(old)) end
  removed = removed + #old
end
return removed
"""
)
