"""`SyncCache`: the cache for code that is not async (Django views, scripts, sync FastAPI routes).

It is a facade, not a second implementation: an L1 hit is answered in the calling thread (a dict
lookup), everything else runs the async `Cache` on a private event loop thread (a
`perfkit.syncfacade.SyncFacade`, as `SyncJobQueue` is), which owns its own L2 connections and shares the
L1 and the statistics with the async cache. A plain loader runs in the thread that called `get_or_set`
(so thread-bound state works in it: a Django database connection, a thread-local session) while the loop
waits for it, so one slow loader does not hold up other threads' cache calls, and concurrent misses from
many threads still share one loader call (the others wait for the first). A background refresh of a
stale value, once its caller has gone, runs the loader in a worker thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar, cast

from perfkit.cache.cache import Cache
from perfkit.cache.keys import TTL, UNSET, Unset
from perfkit.cache.stats import CacheStats
from perfkit.syncfacade import SyncFacade

T = TypeVar("T")


class SyncCache(SyncFacade):
    """Blocking cache API: `SyncCache("sqlite:///cache.db")` or `cache.sync` for an existing `Cache`."""

    def __init__(self, url: str | Cache | None = None, **options: Any) -> None:
        super().__init__("perfkit-cache-sync")
        self.cache = url if isinstance(url, Cache) else Cache(url, **options)
        self._inner = self.cache.sibling()
        self._tiers = self._inner.tiers
        self.cache.adopt_sync(self)  # `.cached` on plain functions must reuse this facade, not start another

    def get(self, key: str, default: Any = None) -> Any:
        item = self._tiers.find(key)
        if item is not None:
            return item.value
        if self._tiers.l2 is None:
            return default
        return self.call(self._inner.get(key, default))

    def get_or_set(self, key: str, loader: Callable[[], T], ttl: TTL | Unset = UNSET, **options: Any) -> T:
        item = self._tiers.find(key, True)
        if item is not None:
            return cast(T, item.value)
        loop = self.portal.loop
        wanted: concurrent.futures.Future[asyncio.Future[Any]] = concurrent.futures.Future()
        lock, state = threading.Lock(), {"gone": False}

        async def in_caller() -> Any:  # the loop's side: ask the calling thread to run the loader
            with lock:
                gone = state["gone"]
                if not gone:
                    result: asyncio.Future[Any] = loop.create_future()
                    wanted.set_result(result)
            return await (asyncio.to_thread(loader) if gone else result)

        outer = asyncio.run_coroutine_threadsafe(self._inner.get_or_set(key, in_caller, ttl, **options), loop)
        concurrent.futures.wait([outer, wanted], return_when=concurrent.futures.FIRST_COMPLETED)
        with lock:
            state["gone"] = True
            asked = wanted.done()
        if asked:
            _run_for(loop, wanted.result(), loader)
        return cast(T, outer.result())

    def set(self, key: str, value: Any, ttl: TTL | Unset = UNSET, **options: Any) -> None:
        self.call(self._inner.set(key, value, ttl, **options))

    def delete(self, key: str) -> bool:
        return self.call(self._inner.delete(key))

    def exists(self, key: str) -> bool:
        return self.call(self._inner.exists(key))

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        return self.call(self._inner.get_many(list(keys)))

    def set_many(self, mapping: Mapping[str, Any], ttl: TTL | Unset = UNSET, **options: Any) -> None:
        self.call(self._inner.set_many(mapping, ttl, **options))

    def incr(self, key: str, delta: int = 1, ttl: TTL | Unset = UNSET) -> int:
        return self.call(self._inner.incr(key, delta, ttl))

    def invalidate_tags(self, tags: Iterable[str]) -> int:
        tiers = self._tiers
        if tiers.l2 is None and tiers.l1 is not None:  # in-process only: no thread hop
            return tiers.l1.remove_tags(tiers.tags(list(tags)))
        return self.call(self._inner.invalidate_tags(list(tags)))

    def delete_match(self, pattern: str) -> int:
        return self.call(self._inner.delete_match(pattern))

    def clear(self) -> int:
        return self.call(self._inner.clear())

    def stats(self) -> CacheStats:
        return self.cache.stats()

    def cached(self, *args: Any, **kwargs: Any) -> Any:
        return self.cache.cached(*args, **kwargs)

    async def aclose(self) -> None:
        """Close the private loop's connections (runs on that loop; `close()` also stops its thread)."""
        await self._inner.close()


def _run_for(loop: asyncio.AbstractEventLoop, result: asyncio.Future[Any], loader: Callable[[], Any]) -> None:
    """Run `loader` here and hand its value (or exception) to `result` on `loop`."""

    def settle(fn: Callable[[Any], None], value: Any) -> None:
        if not result.done():  # the waiting load may have been cancelled meanwhile
            fn(value)

    try:
        value = loader()
    except BaseException as exc:
        loop.call_soon_threadsafe(settle, result.set_exception, exc)
        if not isinstance(exc, Exception):
            raise
    else:
        loop.call_soon_threadsafe(settle, result.set_result, value)
