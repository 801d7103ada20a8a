"""Tag invalidation across tiers and failures: own L1 copies, backoff, skewed clocks, swept tag rows.

Found in review; each test failed before its fix."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from perfkit import Cache
from tests.conftest import REDIS_URL, eventually, require_redis


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
