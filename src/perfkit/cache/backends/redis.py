"""Shared backend on Redis (redis-py asyncio with hiredis).

A hit is one GET: nothing else rides on the hot path. Tag invalidation and pattern deletion work in
chunks (SCAN, never KEYS; ZRANGE pages of 1,000) so that invalidating 100k keys never holds Redis for
long. Timeouts are the client's socket timeouts, not `asyncio.wait_for`, which would add a task per
call; retries are off so an outage costs one timeout, and the cache front decides how to degrade.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from redis.exceptions import ResponseError

from perfkit.backends import BackendURL
from perfkit.cache.backends import redis_keys as K
from perfkit.cache.pattern import compile_pattern, escape
from perfkit.errors import SerializationError
from perfkit.redisclient import CACHE_ERRORS, Translator, cache_options, close_client, make_client, translated

if TYPE_CHECKING:
    from perfkit.cache.backends.memory import MemoryBackend
    from perfkit.cache.coherence import Coherence

_CHUNK = 1000


def client_from_url(url: BackendURL, *, timeout: float) -> Any:
    """The backend's client, with the cache's settings (`perfkit.redisclient.cache_options`): on one
    node a multiplexed connection, on a cluster redis-py's cluster client."""
    return make_client(url, cache_options(url, timeout=timeout, multiplexed=True))


class RedisBackend:
    kind = "redis"
    stores_objects = False
    shared = True

    def __init__(self, url: BackendURL, *, timeout: float = 0.5, origin: str = "") -> None:
        self.url = url
        self.where = url.redacted()
        self.timeout = timeout
        self.translate = Translator(self.where, CACHE_ERRORS)  # every driver error, via @translated
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connect()

    def coherence(self, prefix: str, l1: MemoryBackend, interval: float) -> Coherence:
        """Client-side tracking: Redis reports every change under `prefix` (`RedisTracker`)."""
        from perfkit.cache.coherence import RedisTracker

        return RedisTracker(self.url, prefix, l1, self.timeout)

    def _connect(self) -> None:
        self.client = client_from_url(self.url, timeout=self.timeout)
        self._set_tagged = self.client.register_script(K.SET_TAGGED)
        self._delete = self.client.register_script(K.DELETE)
        self._incr = self.client.register_script(K.INCR)
        self._release = self.client.register_script(K.RELEASE_LOCK)
        self._invalidate_page = self.client.register_script(K.INVALIDATE_PAGE)

    def key_prefix(self, namespace: str) -> str:
        return K.namespace_prefix(namespace)

    def _bind(self) -> None:
        """Connections belong to one event loop: used from another (a second `asyncio.run()`, a worker
        process's loop), the client is rebuilt instead of failing with "Event loop is closed"."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            if self._loop is not None:
                self._connect()  # the old pool's sockets belong to the other loop; let them go
            self._loop = loop

    async def get(self, key: str) -> bytes | None:
        self._bind()
        try:  # not @translated: the hit path spares the wrapper's coroutine frame
            return cast("bytes | None", await self.client.get(key))
        except Exception as exc:
            self.translate.reraise(exc)

    @translated
    async def get_many(self, keys: Sequence[str]) -> list[Any | None]:
        self._bind()
        return cast("list[Any | None]", await self.client.mget(keys))

    async def set(
        self,
        key: str,
        value: Any,
        ttl: float | None,
        tags: Sequence[str] = (),
        expect: Sequence[int] | None = None,
    ) -> bool:
        self._bind()
        try:  # not @translated, as get(): a hot path
            if not tags:
                # a plain SET, not a script: the hot path stays one command (an untagged overwrite of a
                # tagged key leaves its old index entries to the TTL or the tag's invalidation: see DELETE)
                await self.client.set(key, value, px=ttl_ms(ttl))
                return True
            keys = [key, K.keytags_key(key), *map(K.tag_key, tags)]
            args: list[Any] = [value, ttl_ms(ttl) or "", int(time.time() * 1000)]
            if expect is not None:
                keys += map(K.version_key, tags)
                args += [len(tags), *expect]
            return bool(await self._set_tagged(keys=keys, args=args))
        except Exception as exc:
            self.translate.reraise(exc)

    @translated
    async def tag_versions(self, tags: Sequence[str]) -> list[int]:
        self._bind()
        if not tags:
            return []
        values = await self.client.mget([K.version_key(t) for t in tags])
        return [int(v) if v is not None else 0 for v in values]

    @translated
    async def set_many(
        self, items: Sequence[tuple[str, Any]], ttl: float | None, tags: Sequence[str] = ()
    ) -> None:
        self._bind()
        async with self.client.pipeline(transaction=False) as pipe:
            now = int(time.time() * 1000)
            tag_keys = [K.tag_key(t) for t in tags]
            for key, value in items:
                if tags:
                    await self.queue_set_tagged(
                        pipe, [key, K.keytags_key(key), *tag_keys], [value, ttl_ms(ttl) or "", now]
                    )
                else:
                    pipe.set(key, value, px=ttl_ms(ttl))
            await pipe.execute()

    async def queue_set_tagged(self, pipe: Any, keys: list[Any], args: list[Any]) -> None:
        """For subclasses: queue one tagged SET (the `SET_TAGGED` script) on `pipe`, a pipeline of this
        backend's client. Here the registered script (EVALSHA, loaded on the first NOSCRIPT)."""
        await self._set_tagged(keys=keys, args=args, client=pipe)

    @translated
    async def delete(self, keys: Sequence[str]) -> int:
        self._bind()
        if not keys:
            return 0
        return await self._delete_keys(keys)

    async def _delete_keys(self, keys: Sequence[str | bytes]) -> int:
        """Delete values and take them out of their tag indexes: one script per hash slot (namespace)."""
        by_slot: dict[str, list[str]] = {}
        for key in keys:
            name = key.decode("utf-8", "surrogateescape") if isinstance(key, bytes) else key
            by_slot.setdefault(K.slot_tag(name), []).append(name)
        removed = 0
        for group in by_slot.values():
            removed += int(await self._delete(keys=[*group, *map(K.keytags_key, group)]))
        return removed

    @translated
    async def exists(self, key: str) -> bool:
        self._bind()
        return bool(await self.client.exists(key))

    @translated
    async def incr(self, key: str, delta: int, ttl: float | None) -> int:
        self._bind()
        try:
            return int(await self._incr(keys=[key], args=[delta, ttl_ms(ttl) or ""]))
        except ResponseError as exc:
            if "not an integer" in str(exc):
                raise SerializationError(f"cannot incr key {key!r}: it does not hold an integer") from None
            raise

    @translated
    async def invalidate_tags(self, tags: Sequence[str], removed_keys: list[str] | None = None) -> int:
        """Bump the tags' versions, then delete their keys page by page, all tags per round trip.

        Versions first: a load that starts from now on sees the new version, and one that loaded
        before cannot store its (possibly stale) value any more. The tag index is never deleted as a
        whole: ZREM removes what was read, Redis drops the set when it is empty, and a value tagged
        meanwhile keeps its entry, so the next invalidation still finds it.
        """
        self._bind()
        removed = 0
        tag_keys = [K.tag_key(t) for t in tags]
        async with self.client.pipeline(transaction=False) as pipe:
            for tag in tags:
                pipe.incr(K.version_key(tag))
                pipe.expire(K.version_key(tag), K.VERSION_TTL)
            await pipe.execute()
        pages = await self._read_pages(tag_keys)
        while pages:
            members = list(dict.fromkeys(m for page in pages.values() for m in page))
            if removed_keys is not None:
                removed_keys.extend(m.decode("utf-8", "surrogateescape") for m in members)
            args: list[Any] = []
            for page in pages.values():
                args += [len(page), *page]
            # one script: a value re-set between our UNLINK and ZREM would otherwise lose its entry
            removed += int(await self._invalidate_page(keys=list(pages), args=args))
            pages = await self._read_pages([t for t, page in pages.items() if len(page) >= _CHUNK])
        return removed

    async def _read_pages(self, tag_keys: Sequence[str]) -> dict[str, list[bytes]]:
        """The next page of members of each tag, in one round trip; tags with none left are omitted."""
        self._bind()
        if not tag_keys:
            return {}
        async with self.client.pipeline(transaction=False) as pipe:
            for tkey in tag_keys:
                pipe.zrange(tkey, 0, _CHUNK - 1)
            replies = await pipe.execute()
        return {tkey: page for tkey, page in zip(tag_keys, replies, strict=True) if page}

    async def delete_match(self, pattern: str) -> int:
        return await self._delete_match(pattern, values=True)

    @translated
    async def _delete_match(self, pattern: str, *, values: bool) -> int:
        """SCAN and delete in batches; `values`: they are cache values, taken out of their tag indexes
        too (bookkeeping keys, such as the indexes themselves, are just unlinked). The pattern is
        perfkit's (`perfkit.cache.pattern`): SCAN MATCH narrows with an escaped Redis glob, and the
        pattern decides on each key, so Redis removes what the other backends remove."""
        self._bind()
        compiled = compile_pattern(pattern)
        matches = compiled.matches
        removed = 0
        drop = self._delete_keys if values else (lambda batch: self.client.unlink(*batch))
        batch: list[bytes] = []
        async for key in self.client.scan_iter(match=compiled.redis_glob, count=_CHUNK):
            if not matches(key.decode("utf-8", "surrogateescape")):
                continue
            batch.append(key)
            if len(batch) >= _CHUNK:
                removed += await drop(batch)
                batch.clear()
        if batch:
            removed += await drop(batch)
        return removed

    async def clear(self, prefix: str) -> int:
        removed = await self.delete_match(escape(prefix) + "*")
        for bookkeeping in (K.tag_key(prefix), K.keytags_key(prefix), K.version_key(prefix)):
            # versions may go too: a load that read one now finds 0 and is dropped, the safe side
            await self._delete_match(escape(bookkeeping) + "*", values=False)
        return removed

    @translated
    async def acquire_lock(self, key: str, token: str, ttl: float) -> bool:
        self._bind()
        return bool(await self.client.set(K.lock_key(key), token, nx=True, px=ttl_ms(ttl)))

    @translated
    async def release_lock(self, key: str, token: str) -> None:
        self._bind()
        await self._release(keys=[K.lock_key(key)], args=[token])

    @translated
    async def ping(self) -> None:
        self._bind()
        await self.client.ping()

    async def close(self) -> None:
        await close_client(self.client)


__all__ = ["RedisBackend", "client_from_url", "close_client", "ttl_ms"]


def ttl_ms(ttl: float | None) -> int | None:
    """A TTL in whole milliseconds, at least 1 (Redis refuses PX 0); None stays None (no expiry)."""
    return max(1, int(ttl * 1000)) if ttl is not None else None
