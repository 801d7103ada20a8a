"""Stale-while-revalidate: serve the stale value while one caller refreshes it in the background."""

from __future__ import annotations

import asyncio

import pytest

from perfkit import Cache
from tests.conftest import REDIS_URL, eventually, pass_time, require_redis


async def test_stale_value_served_while_refreshing(cache: Cache) -> None:
    """Past ttl but within stale_ttl, callers get the old value at once and one refresh runs."""
    version = 0
    refreshing = asyncio.Event()
    release = asyncio.Event()

    async def loader() -> int:
        nonlocal version
        version += 1
        if version > 1:
            refreshing.set()
            await release.wait()
        return version

    assert await cache.get_or_set("k", loader, ttl=0.05, stale_ttl=30) == 1
    await pass_time(0.08)
    answers = await asyncio.gather(
        *[cache.get_or_set("k", loader, ttl=0.05, stale_ttl=30) for _ in range(20)]
    )
    assert answers == [1] * 20  # all served stale, nobody waited for the loader
    await asyncio.wait_for(refreshing.wait(), 2)
    release.set()
    await eventually(lambda: _equals(cache, "k", 2), what="refreshed value")
    assert version == 2  # exactly one refresh for 20 stale readers


async def test_stale_served_when_refresh_fails(cache: Cache) -> None:
    """With serve_stale_on_error, a failing refresh keeps the stale value instead of raising."""
    calls = 0
    failed = asyncio.Event()

    def loader() -> str:
        nonlocal calls
        calls += 1
        if calls > 1:
            failed.set()
            raise RuntimeError("upstream down")
        return "v1"

    opts = {"ttl": 0.05, "stale_ttl": 30, "serve_stale_on_error": True}
    assert await cache.get_or_set("k", loader, **opts) == "v1"  # type: ignore[arg-type]
    await pass_time(0.08)
    assert await cache.get_or_set("k", loader, **opts) == "v1"  # type: ignore[arg-type]
    await asyncio.wait_for(failed.wait(), 2)
    assert await cache.get_or_set("k", loader, **opts) == "v1"  # type: ignore[arg-type]


async def test_past_stale_window_is_a_miss(cache: Cache) -> None:
    """Beyond ttl + stale_ttl the value is gone and the loader runs inline."""
    n = 0

    def loader() -> int:
        nonlocal n
        n += 1
        return n

    assert await cache.get_or_set("k", loader, ttl=0.03, stale_ttl=0.03) == 1
    await pass_time(0.1)
    assert await cache.get_or_set("k", loader, ttl=0.03, stale_ttl=0.03) == 2


async def _equals(cache: Cache, key: str, expected: object) -> bool:
    return bool(await cache.get(key) == expected)


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
