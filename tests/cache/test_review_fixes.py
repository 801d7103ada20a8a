"""Regressions found in review: each test failed before its fix."""

from __future__ import annotations

import asyncio
import gc
import time
import warnings
from pathlib import Path

import pytest

from perfkit import Cache, SyncCache
from tests.conftest import REDIS_URL, eventually, pass_time, require_redis


@pytest.mark.sqlite
async def test_tiered_sqlite_invalidation_evicts_the_invalidating_process_l1(tmp_path: Path) -> None:
    """A tag invalidation also evicts this process's own L1 copies filled from L2 reads (no tags)."""
    url = f"sqlite:///{tmp_path}/c.db"
    async with Cache(url, namespace="own") as writer, Cache(url, l1="memory://", namespace="own") as cache:
        await writer.set("k", "old", tags=["t"])
        assert await cache.get("k") == "old"  # an L2 hit, copied into L1 without its tags
        assert await cache.get("k") == "old"
        await cache.invalidate_tags(["t"])
        assert await cache.get("k") is None


@pytest.mark.redis
async def test_tiered_redis_invalidation_evicts_own_l1_at_once(namespace: str) -> None:
    """Read-your-invalidation: the invalidating process's L1 is cleared before invalidate_tags returns."""
    require_redis()
    async with (
        Cache(REDIS_URL, namespace=namespace) as writer,
        Cache(REDIS_URL, l1="memory://", namespace=namespace) as cache,
    ):
        await writer.set("k", "old", tags=["t"])
        await cache.get("k")

        async def l1_holds_it() -> bool:  # the tracking subscription is live and L1 has the copy
            ready = cache.tiers.coherence is not None and cache.tiers.coherence.ready
            return ready and await cache.get("k") == "old" and cache.stats().tiers["l1"].hits > 0

        await eventually(l1_holds_it, what="L1 copy under live tracking")
        await cache.invalidate_tags(["t"])
        assert await cache.get("k") is None  # not "old" from L1 while the tracking message is in flight
        await cache.clear()


@pytest.mark.redis
async def test_invalidations_are_attempted_during_backoff(namespace: str) -> None:
    """After one transient L2 failure, deletes and invalidations are still sent, not skipped."""
    require_redis()
    async with Cache(REDIS_URL, namespace=namespace) as cache:
        await cache.set("k", "old", tags=["t"])
        cache.tiers.health.down_for(60)  # as after a failure
        assert await cache.invalidate_tags(["t"]) == 1
        cache.tiers.health.ok()
        assert await cache.get("k") is None
        await cache.clear()


@pytest.mark.redis
async def test_tag_index_uses_the_server_clock(namespace: str) -> None:
    """A writer whose clock runs ahead does not prune other writers' live keys from a tag index."""
    require_redis()
    async with Cache(REDIS_URL, namespace=namespace) as cache:
        await cache.set("a", 1, ttl=60, tags=["t"])
        real = time.time
        try:
            time.time = lambda: real() + 400  # type: ignore[assignment]  # this host's clock is 400 s ahead
            await cache.set("b", 2, ttl=60, tags=["t"])
        finally:
            time.time = real  # type: ignore[assignment]
        assert await cache.invalidate_tags(["t"]) == 2
        assert await cache.get("a") is None
        await cache.clear()


@pytest.mark.redis
async def test_stale_while_revalidate_on_a_single_l2_tier(namespace: str) -> None:
    """On an L2-only cache, stale readers are answered at once while the one refresh runs."""
    require_redis()
    release = asyncio.Event()
    calls = 0

    async def loader() -> int:
        nonlocal calls
        calls += 1
        if calls > 1:
            await release.wait()
        return calls

    async with Cache(REDIS_URL, namespace=namespace) as cache:
        assert await cache.get_or_set("k", loader, ttl=0.05, stale_ttl=30) == 1
        await pass_time(0.08)
        first = await cache.get_or_set("k", loader, ttl=0.05, stale_ttl=30)
        second = await asyncio.wait_for(cache.get_or_set("k", loader, ttl=0.05, stale_ttl=30), 0.5)
        assert (first, second) == (1, 1)
        release.set()
        await cache.clear()


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
    cache = SyncCache(f"sqlite:///{tmp_path}/s.db", namespace="s")

    @cache.cached(ttl=60)
    def f(x: int) -> int:
        return x * 2

    assert f(2) == 4
    assert cache.cache.sync is cache
    cache.close()
    import threading

    assert not [t for t in threading.enumerate() if t.name == "perfkit-cache-sync" and t.is_alive()]


@pytest.mark.sqlite
async def test_sqlite_sweep_drops_tag_rows_of_deleted_keys(tmp_path: Path) -> None:
    """Tag rows of keys deleted before expiring (ttl=None) do not accumulate: the sweep removes them."""
    import sqlite3

    async with Cache(f"sqlite:///{tmp_path}/c.db", namespace="sw") as cache:
        for i in range(50):
            await cache.set(f"k{i}", i, ttl=None, tags=["t"])
        await cache.delete_match("k*")
        cache.tiers.l2.sweep()  # type: ignore[union-attr]
    with sqlite3.connect(tmp_path / "c.db") as conn:
        assert conn.execute("SELECT count(*) FROM perfkit_cache_tags").fetchone()[0] == 0
