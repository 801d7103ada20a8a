-- helper prelude shared by the scripts
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
