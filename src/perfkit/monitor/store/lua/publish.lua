-- KEYS = snapshots hash, rollup:<minute> hash, minutes zset, retired zset.
-- ARGV = proc, snapshot JSON, rollup JSON, rollup ttl s, minute.
-- Writes the process's snapshot and rollup, unless it was compacted as dead (then 0: nothing written).
if redis.call('ZSCORE', KEYS[4], ARGV[1]) then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[4])
redis.call('ZADD', KEYS[3], ARGV[5], ARGV[5])
return 1
