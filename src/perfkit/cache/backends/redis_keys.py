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
INVALIDATE_CHANNEL: Final = "__redis__:invalidate"
FOREVER: Final = "+inf"


def tag_key(tag: str) -> str:
    return TAG_PREFIX + tag


def lock_key(key: str) -> str:
    return LOCK_PREFIX + key


# KEYS: value key, tag keys...; ARGV: value, ttl ms ('' = none), now ms
SET_TAGGED: Final = """
local ttl = tonumber(ARGV[2])
if ttl then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
else
  redis.call('SET', KEYS[1], ARGV[1])
end
local now = tonumber(ARGV[3])
local score = ttl and (now + ttl) or '+inf'
for i = 2, #KEYS do
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
