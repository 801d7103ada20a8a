-- KEYS: value key, its tag record, n tag keys, then (when ARGV[4] = n) n tag-version keys;
-- ARGV: value, ttl ms ('' = none), now ms, [n, expected version per tag...].
-- Returns 0 without writing when a tag was invalidated since the caller read its version. The value
-- leaves the indexes of the tags it had and no longer has, and its record lists the new ones.
local n = tonumber(ARGV[4])
if n then
  for i = 1, n do
    local v = tonumber(redis.call('GET', KEYS[2 + n + i]) or '0')
    if v ~= tonumber(ARGV[4 + i]) then return 0 end
  end
end
local last = n and (2 + n) or #KEYS
local ttl = tonumber(ARGV[2])
local tags, keep = {}, {}
for i = 3, last do
  tags[#tags + 1] = KEYS[i]
  keep[KEYS[i]] = true
end
untag(KEYS[1], KEYS[2], keep)
if ttl then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
  redis.call('SET', KEYS[2], cmsgpack.pack(tags), 'PX', ttl)
else
  redis.call('SET', KEYS[1], ARGV[1])
  redis.call('SET', KEYS[2], cmsgpack.pack(tags))
end
local t = redis.call('TIME')  -- the server's clock: writers' clocks may disagree
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local score = ttl and (now + ttl) or '+inf'
for i = 3, last do
  local existed = redis.call('EXISTS', KEYS[i])
  redis.call('ZADD', KEYS[i], score, KEYS[1])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
  if ttl then
    local left = redis.call('PTTL', KEYS[i])
    if existed == 0 or (left >= 0 and left < ttl) then redis.call('PEXPIRE', KEYS[i], ttl) end
  else
    redis.call('PERSIST', KEYS[i])
  end
end
return 1
