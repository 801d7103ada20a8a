"""Every Redis key name and Lua script the cache uses, in one place.

Value keys are the cache's own keys (`<namespace>:<key>`), so `redis-cli` shows what you expect and
client-side tracking can follow a namespace by prefix. Bookkeeping lives under `perfkit:`:
a tag is a sorted set of keys scored by their expiry, pruned on every write, so it never holds more
than the live keys that carry it; a stampede lock is a plain key with a token and a TTL.
"""

from __future__ import annotations

from typing import Final

TAG_PREFIX: Final = "perfkit:tag:"
LOCK_PREFIX: Final = "perfkit:lock:"
VERSION_PREFIX: Final = "perfkit:tagv:"
VERSION_TTL: Final = 86400  # seconds: a tag version outlives any load that could have read it
INVALIDATE_CHANNEL: Final = "__redis__:invalidate"
FOREVER: Final = "+inf"


def tag_key(tag: str) -> str:
    return TAG_PREFIX + tag


def lock_key(key: str) -> str:
    return LOCK_PREFIX + key


def version_key(tag: str) -> str:
    return VERSION_PREFIX + tag


# KEYS: value key, n tag keys, then (when ARGV[4] = n) n tag-version keys;
# ARGV: value, ttl ms ('' = none), now ms, [n, expected version per tag...].
# Returns 0 without writing when a tag was invalidated since the caller read its version.
SET_TAGGED: Final = """
local n = tonumber(ARGV[4])
if n then
  for i = 1, n do
    local v = tonumber(redis.call('GET', KEYS[1 + n + i]) or '0')
    if v ~= tonumber(ARGV[4 + i]) then return 0 end
  end
end
local last = n and (1 + n) or #KEYS
local ttl = tonumber(ARGV[2])
if ttl then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
else
  redis.call('SET', KEYS[1], ARGV[1])
end
local t = redis.call('TIME')  -- the server's clock: writers' clocks may disagree
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local score = ttl and (now + ttl) or '+inf'
for i = 2, last do
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
"""

# KEYS: counter key; ARGV: delta, ttl ms ('' = none). The TTL is set only when the counter is created.
INCR: Final = """
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
if v == tonumber(ARGV[1]) and ARGV[2] ~= '' and redis.call('PTTL', KEYS[1]) == -1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return v
"""

# KEYS: lock key; ARGV: token. Deletes the lock only if this caller still holds it.
RELEASE_LOCK: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
