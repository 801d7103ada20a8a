"""Every Redis key name and Lua script the cache uses, in one place (the scripts' text in `lua/`).

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

from perfkit.redisclient.scripts import lua_script

TAG_PREFIX: Final = "perfkit:tag:"
LOCK_PREFIX: Final = "perfkit:lock:"
VERSION_PREFIX: Final = "perfkit:tagv:"
KEYTAGS_PREFIX: Final = "perfkit:ktags:"  # also spelled out in lua/invalidate_page.lua
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


# The Lua scripts, in `lua/*.lua` beside this module (each file says what its KEYS and ARGV are). The
# scripts that change tag indexes start with `untag.lua`, the helper that takes a value out of them.
_LUA = "perfkit.cache.backends"
SET_TAGGED: Final = lua_script(_LUA, "untag", "set_tagged")
DELETE: Final = lua_script(_LUA, "untag", "delete")
INCR: Final = lua_script(_LUA, "incr")
RELEASE_LOCK: Final = lua_script(_LUA, "release_lock")
INVALIDATE_PAGE: Final = lua_script(_LUA, "untag", "invalidate_page")
