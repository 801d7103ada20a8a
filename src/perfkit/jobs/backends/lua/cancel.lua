-- KEYS: ready, delayed. ARGV: tag, id, now_s, retention s. Returns the record after the change, or 0
-- when the job key is not a hash (a corrupt job: the caller reads it as such).
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
