# ruff: noqa: ASYNC109 - `timeout` is the name Django's cache API gives the entry's lifetime, not a deadline
"""The async half of `PerfkitCache`: Django's `a*` methods, native over perfkit's async `Cache`.

Django's `BaseCache` runs each async method as its sync twin in a thread (`sync_to_async`); here they
await perfkit's cache on the running loop instead (its own connections per loop, the shared L1), so an
ASGI view pays no thread hop, and an L1 hit is a dict lookup. Semantics are those of the sync methods
in `perfkit.django.cache` (which documents them); each one is the same few lines over the async API.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT

from perfkit.django.cache_base import MISSING, Expired, PerfkitCacheBase, conversion_lock, not_an_int
from perfkit.django.cache_values import prepare, unwrap
from perfkit.errors import SerializationError

__all__ = ["AsyncPerfkitCache"]


class AsyncPerfkitCache(PerfkitCacheBase):
    """`PerfkitCacheBase` plus Django's async cache API (and the async forms of the extensions)."""

    async def aget(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        return unwrap(await self.for_loop().get(self.key(key, version), default))

    async def aset(
        self,
        key: Any,
        value: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        *,
        tags: Iterable[str] | None = None,
    ) -> bool:
        k, ttl = self.key(key, version), self.seconds(timeout)
        if isinstance(ttl, Expired):
            await self.for_loop().delete(k)
            return True
        failed = self.l2_failures()
        await self.for_loop().set(k, prepare(value), ttl, tags=tags)
        return self.l2_failures() == failed

    async def aadd(
        self,
        key: Any,
        value: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        *,
        tags: Iterable[str] | None = None,
    ) -> bool:
        k, ttl, cache = self.key(key, version), self.seconds(timeout), self.for_loop()
        if isinstance(ttl, Expired):
            return not await cache.exists(k)
        added, prepared, failures = False, prepare(value), self.l2_failures()

        def load() -> Any:
            nonlocal added
            added = True
            return prepared

        await cache.get_or_set(k, load, ttl, tags=tags)  # single flight + the cross-process lock
        return added and self.l2_failures() == failures

    async def aget_or_set(
        self,
        key: Any,
        default: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        *,
        tags: Iterable[str] | None = None,
    ) -> Any:
        k, ttl = self.key(key, version), self.seconds(timeout)
        if isinstance(ttl, Expired):
            return default() if callable(default) else default
        prepared = None if callable(default) else prepare(default)

        def load() -> Any:  # called in this loop's thread (Django's aget_or_set calls it there too)
            return prepare(default()) if callable(default) else prepared

        return unwrap(await self.for_loop().get_or_set(k, load, ttl, tags=tags))

    async def atouch(self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        k, ttl, cache = self.key(key, version), self.seconds(timeout), self.for_loop()
        value = await cache.get(k, MISSING)
        if value is MISSING:
            return False
        if isinstance(ttl, Expired):
            await cache.delete(k)
        else:
            await cache.set(k, prepare(value), ttl)
        return True

    async def adelete(self, key: Any, version: int | None = None) -> bool:
        return await self.for_loop().delete(self.key(key, version))

    async def ahas_key(self, key: Any, version: int | None = None) -> bool:
        return await self.for_loop().exists(self.key(key, version))

    async def aget_many(self, keys: Iterable[Any], version: int | None = None) -> dict[Any, Any]:
        made = {self.key(key, version): key for key in keys}
        found = await self.for_loop().get_many(list(made))
        return {made[k]: unwrap(value) for k, value in found.items()}

    async def aset_many(
        self,
        data: Mapping[Any, Any],
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        *,
        tags: Iterable[str] | None = None,
    ) -> list[Any]:
        ttl = self.seconds(timeout)
        if isinstance(ttl, Expired):
            await self.adelete_many(list(data), version)
            return []
        failed = self.l2_failures()
        await self.for_loop().set_many(
            {self.key(k, version): prepare(v) for k, v in data.items()}, ttl, tags=tags
        )
        return list(data) if self.l2_failures() != failed else []

    async def adelete_many(self, keys: Iterable[Any], version: int | None = None) -> None:
        cache = self.for_loop()
        for k in [self.key(key, version) for key in keys]:
            await cache.delete(k)

    async def aincr(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        k, cache, failures = self.key(key, version), self.for_loop(), self.l2_failures("exists")
        if not await cache.exists(k):
            raise self.absent(key, failures)
        try:
            return await cache.incr(k, delta, self.counter_ttl())
        except SerializationError:  # an int written by set(): made a counter (see `PerfkitCache.incr`)
            async with conversion_lock(k):
                return await self._aconvert(key, k, delta)

    async def _aconvert(self, key: Any, k: str, delta: int) -> int:
        cache = self.for_loop()
        try:
            return await cache.incr(k, delta, self.counter_ttl())
        except SerializationError:
            value = await cache.get(k, MISSING)
            if value is MISSING:
                raise ValueError(f"Key '{key}' not found") from None
            if type(value) is not int:
                raise not_an_int(key, value) from None
            await cache.delete(k)
            return await cache.incr(k, value + delta, self.counter_ttl())

    async def adecr(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        return await self.aincr(key, -delta, version)

    async def aclear(self) -> None:
        await self.for_loop().clear()

    async def aclose(self, **kwargs: Any) -> None:
        """Nothing to do: connections are pooled per process and loop, not per request."""

    async def ainvalidate_tags(self, tags: Iterable[str]) -> int:
        return await self.for_loop().invalidate_tags(tags)

    async def adelete_pattern(self, pattern: str, version: int | None = None) -> int:
        return await self.for_loop().delete_match(self.pattern(pattern, version))
