"""`SyncCache.get_many` answers L1 hits in the calling thread, as `get` does, and counts each lookup once."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from perfkit.cache import Cache
from tests.conftest import cache_url


def test_get_many_of_l1_hits_starts_no_loop_thread() -> None:
    """memory://: get_many of cached keys is answered in the calling thread (no facade thread starts)."""
    cache = Cache("memory://", namespace="sgm-memory")
    asyncio.run(cache.set_many({"a": 1, "b": 2}, 60))  # the async cache: the facade has not started
    sync = cache.sync
    threads = threading.active_count()
    assert sync.get_many(["a", "b", "zz"]) == {"a": 1, "b": 2}
    assert threading.active_count() == threads
    assert cache.stats().tiers["l1"].hits == 2 and cache.stats().tiers["l1"].misses == 1
    sync.close()


@pytest.mark.redis
def test_tiered_get_many_counts_each_lookup_once(tmp_path: Any) -> None:
    """memory+redis: all-L1 get_many counts L1 hits; a partial hit goes to Redis, each key counted once."""
    url, l1 = cache_url("memory+redis", tmp_path)
    cache = Cache(url, l1=l1, namespace=f"sgm{threading.get_ident()}")
    sync = cache.sync
    try:
        sync.set_many({"a": 1, "b": 2}, 60)
        deadline = time.monotonic() + 5  # L1 serves once the coherence channel is subscribed
        while cache.stats().tiers["l1"].hits == 0 and time.monotonic() < deadline:
            sync.get("a")
        sync.set_many({"a": 1, "b": 2}, 60)  # again, now that L1 copies are kept
        hits0 = cache.stats().tiers["l1"].hits
        assert sync.get_many(["a", "b"]) == {"a": 1, "b": 2}
        assert cache.stats().tiers["l1"].hits == hits0 + 2
        misses0 = cache.stats().tiers["l1"].misses
        assert sync.get_many(["a", "zz"]) == {"a": 1}
        assert cache.stats().tiers["l1"].misses == misses0 + 1
    finally:
        sync.clear()
        sync.close()


@pytest.mark.redis
async def test_tiered_get_many_fills_l1(tmp_path: Any) -> None:
    """memory+redis: keys another process wrote, read by get_many alone, are then answered from L1."""
    url, l1 = cache_url("memory+redis", tmp_path)
    namespace = f"sgmf{threading.get_ident()}"
    writer, reader = Cache(url, namespace=namespace), Cache(url, l1=l1, namespace=namespace)
    try:
        await writer.set_many({"a": 1, "b": 2}, 60)
        deadline = time.monotonic() + 5  # the first reads subscribe the coherence channel
        while reader.stats().tiers["l1"].hits < 2 and time.monotonic() < deadline:
            assert await reader.get_many(["a", "b"]) == {"a": 1, "b": 2}
        assert reader.stats().tiers["l1"].hits >= 2
    finally:
        await writer.clear()
        await writer.close()
        await reader.close()
