"""A Cache used from more than one event loop, and the sync facade's own thread (found in review)."""

from __future__ import annotations

import asyncio
import gc
import threading
import warnings
from pathlib import Path

import pytest

from perfkit import Cache, SyncCache
from tests.conftest import REDIS_URL, require_redis


@pytest.mark.redis
def test_a_cache_survives_a_second_event_loop(namespace: str) -> None:
    """A Cache used by two asyncio.run() calls (scripts, job workers) keeps working on the second."""
    require_redis()
    cache = Cache(REDIS_URL, namespace=namespace, on_error="raise")

    async def clean() -> None:
        await cache.clear()
        await cache.close()

    with warnings.catch_warnings():
        # each loop ends with the cache's connections open (the caller never closed them): their
        # sockets are garbage once the next loop reconnects, and Python says so; collect them here
        warnings.simplefilter("ignore", ResourceWarning)
        asyncio.run(cache.set("k", 1))
        assert asyncio.run(cache.get("k")) == 1
        asyncio.run(clean())
        gc.collect()


@pytest.mark.sqlite
def test_sync_cache_decorator_does_not_start_a_second_portal(tmp_path: Path) -> None:
    """SyncCache(url).cached on a plain function uses that SyncCache, so close() stops everything."""
    # (facade threads other tests' caches left running are not this cache's)
    before = {t for t in threading.enumerate() if t.name == "perfkit-cache-sync"}
    cache = SyncCache(f"sqlite:///{tmp_path}/s.db", namespace="s")

    @cache.cached(ttl=60)
    def f(x: int) -> int:
        return x * 2

    assert f(2) == 4
    assert cache.cache.sync is cache
    cache.close()
    assert not [
        t
        for t in threading.enumerate()
        if t.name == "perfkit-cache-sync" and t.is_alive() and t not in before
    ]
