"""Every Redis key name and Lua script the cache uses, in one place.

Every key of one namespace carries the hash tag `{<namespace>}`, so on Redis Cluster they all live in
one slot and every script and MULTI below touches one node (a tag index and the values it lists, a
tag's version and the write that checks it, must be on the same node to be atomic):

    {ns}:<key>              the value (the cache's own key, so `redis-cli` shows what you expect and
                            client-side tracking can follow a namespace by its prefix `{ns}:`)
    perfkit:tag:{ns}:<tag>  sorted set of the keys carrying a tag, scored by their expiry and pruned on
                            every write, so it never holds more than the live keys that carry it
    perfkit:tagv:{ns}:<tag> the tag's version, bumped by each invalidation (the stale-set guard)
    perfkit:lock:{ns}:<key> a stampede lock: a token with a TTL
    perfkit:ktags:{ns}:<key> the tag index keys a tagged value is listed in (msgpack array, same TTL as
                            the value); written only for tagged values, so that deleting or re-setting
                            the value takes it out of those indexes in the same script

One slot per namespace is the granularity cacheops and BullMQ chose too (one tag per prefix / queue):
a finer tag would split a tag index from its values. Spread load over nodes with several namespaces.
Redis reads the hash tag up to the first `}`, so a namespace containing `}` shares its slot with the
namespaces that start the same way, which is harmless.
"""

from __future__ import annotations

from typing import Final

TAG_PREFIX: Final = "perfkit:tag:"
LOCK_PREFIX: Final = "perfkit:lock:"
VERSION_PREFIX: Final = "perfkit:tagv:"
KEYTAGS_PREFIX: Final = "perfkit:ktags:"  # also spelled out in INVALIDATE_PAGE below
VERSION_TTL: Final = 86400  # seconds: a tag version outlives any load that could have read it
INVALIDATE_CHANNEL: Final = "__redis__:invalidate"
FOREVER: Final = "+inf"


def namespace_prefix(namespace: str) -> str:
    """What the cache puts before each key of `namespace` (and, through its tags, before each tag)."""
    return "{" + namespace + "}:"


def tag_key(tag: str) -> str:
    return TAG_PREFIX + tag


def lock_key(key: str) -> str:
    return LOCK_PREFIX + key


def version_key(tag: str) -> str:
    return VERSION_PREFIX + tag


def keytags_key(key: str) -> str:
    return KEYTAGS_PREFIX + key


def slot_tag(key: str) -> str:
    """The part of a key Redis Cluster hashes (between the first `{` and the next `}`), else the key."""
    start = key.find("{")
    if start >= 0:
        end = key.find("}", start + 1)
        if end > start + 1:
            return key[start + 1 : end]
    return key


# Lua: take value key `key` out of the tag indexes its record (`rec`) lists, except those in `keep` (a
# set of index keys), and delete the record. A value without tags has no record: one GET of nothing.
_UNTAG = """
local function untag(key, rec, keep)
  local old = redis.call('GET', rec)
  if not old then return end
  for _, t in ipairs(cmsgpack.unpack(old)) do
    if not (keep and keep[t]) then redis.call('ZREM', t, key) end
  end
  if not keep then redis.call('DEL', rec) end
end
"""


# KEYS: value key, its tag record, n tag keys, then (when ARGV[4] = n) n tag-version keys;
# ARGV: value, ttl ms ('' = none), now ms, [n, expected version per tag...].
# Returns 0 without writing when a tag was invalidated since the caller read its version. The value
# leaves the indexes of the tags it had and no longer has, and its record lists the new ones.
SET_TAGGED: Final = (
    _UNTAG
    + """
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
"""
)

# KEYS: m value keys, then their m tag records. Deletes the values and takes them out of their tag
# indexes; returns how many values existed.
DELETE: Final = (
    _UNTAG
    + """
local m = #KEYS / 2
local removed = 0
for i = 1, m do
  removed = removed + redis.call('DEL', KEYS[i])
  untag(KEYS[i], KEYS[m + i], nil)
end
return removed
"""
)

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

# KEYS: n tag keys; ARGV: for each tag, the size c of the page just read from its index, then those c
# members (value keys). UNLINKs them, takes them out of every index their tag record lists (not only
# this one) and deletes the records, and removes exactly the page from this index, atomically: a value
# re-set meanwhile keeps its (new) index entry. Returns how many keys existed (a key on two tags' pages
# is unlinked by the first and counted once). The value keys and their records are not repeated in
# KEYS: that would send every page twice (20% slower on 100k keys, bench/cache.py); they share the
# index's hash tag, so on a cluster they are on this node all the same.
INVALIDATE_PAGE: Final = (
    _UNTAG
    + """
local removed, a = 0, 1
for i = 1, #KEYS do
  local c = tonumber(ARGV[a])
  removed = removed + redis.call('UNLINK', unpack(ARGV, a + 1, a + c))
  for j = a + 1, a + c do untag(ARGV[j], 'perfkit:ktags:' .. ARGV[j], nil) end
  redis.call('ZREM', KEYS[i], unpack(ARGV, a + 1, a + c))
  a = a + c + 1
end
return removed
"""
)
