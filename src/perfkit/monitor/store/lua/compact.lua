-- KEYS = snapshots hash, retired zset, aggregate string.
-- ARGV = the aggregate as the caller read it ('' for none), the new aggregate, then per dead process:
-- proc, its snapshot as the caller read it, its publication time.
-- Folds atomically: if the aggregate or one of the snapshots changed since the caller read them (another
-- compactor ran, or a process thought dead published), nothing is written and 0 is returned (retry).
local current = redis.call('GET', KEYS[3])
if (current or '') ~= ARGV[1] then
  return 0
end
for i = 3, #ARGV, 3 do
  if redis.call('HGET', KEYS[1], ARGV[i]) ~= ARGV[i + 1] then
    return 0
  end
end
for i = 3, #ARGV, 3 do
  redis.call('HDEL', KEYS[1], ARGV[i])
  redis.call('ZADD', KEYS[2], ARGV[i + 2], ARGV[i])
end
redis.call('SET', KEYS[3], ARGV[2])
return 1
