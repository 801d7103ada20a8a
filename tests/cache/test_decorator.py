"""`@cache.cached` on async and plain functions, and the sync facade it uses."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from perfkit import Cache, InvalidArgumentError, SyncCache
from tests.conftest import CacheFactory


async def test_async_function_is_cached_by_template_key(cache: Cache) -> None:
    """The body runs once per distinct key; the template names parameters."""
    calls: list[int] = []

    @cache.cached(ttl=60, key="user:{user_id}", tags=["users"])
    async def load_user(user_id: int, verbose: bool = False) -> dict[str, int]:
        calls.append(user_id)
        return {"id": user_id}

    assert await load_user(1) == {"id": 1}
    assert await load_user(1) == {"id": 1}
    assert await load_user(user_id=1, verbose=True) == {"id": 1}
    assert await load_user(2) == {"id": 2}
    assert calls == [1, 2]
    assert load_user.key(7) == "user:7"
    assert await cache.get("user:1") == {"id": 1}
    await cache.invalidate_tags(["users"])
    await load_user(1)
    assert calls == [1, 2, 1]


async def test_sync_function_is_cached(cache: Cache) -> None:
    """A plain function is cached through the sync facade with the same semantics."""
    calls: list[tuple[int, int]] = []

    @cache.cached(ttl=60, key_prefix="api")
    def add(a: int, b: int) -> int:
        calls.append((a, b))
        return a + b

    try:
        assert add(1, 2) == 3
        assert add(1, 2) == 3
        assert add(2, 2) == 4
        assert calls == [(1, 2), (2, 2)]
        assert add.key(1, 2) == "api:1:2"
        assert add.invalidate(1, 2) is True
        assert add(1, 2) == 3
        assert calls == [(1, 2), (2, 2), (1, 2)]
    finally:
        cache.sync.close()


async def test_default_key_distinguishes_types(cache: Cache) -> None:
    """Without a template the key includes each argument's repr, so 1 and '1' differ."""

    @cache.cached(ttl=60)
    async def echo(x: object) -> str:
        return type(x).__name__

    assert await echo(1) == "int"
    assert await echo("1") == "str"


async def test_tag_templates(cache: Cache) -> None:
    """Tags may be templates over the parameters, e.g. one tag per organization."""

    @cache.cached(ttl=60, key="org:{org_id}:stats", tags=["org:{org_id}"])
    async def stats(org_id: int) -> int:
        return org_id * 10

    await stats(1)
    await stats(2)
    assert await cache.invalidate_tags(["org:1"]) == 1
    assert await cache.get("org:2:stats") == 20


def test_template_typo_fails_at_decoration() -> None:
    """A key template naming a non-parameter fails when decorating, naming the culprit."""
    cache = Cache("memory://")
    with pytest.raises(InvalidArgumentError, match="usr_id"):

        @cache.cached(key="user:{usr_id}")
        async def f(user_id: int) -> int:
            return user_id


@pytest.mark.sqlite
def test_sync_cache_threads_share_one_loader_call(tmp_path: object) -> None:
    """SyncCache: 32 threads missing one key run the plain loader once."""
    calls = 0
    lock = threading.Lock()

    def loader() -> str:
        nonlocal calls
        with lock:
            calls += 1
        time.sleep(0.2)  # a slow database call, in the loader's own thread
        return "v"

    with SyncCache(f"sqlite:///{tmp_path}/s.db", namespace="sync") as cache:
        with ThreadPoolExecutor(32) as pool:
            results = list(pool.map(lambda _: cache.get_or_set("k", loader, ttl=60), range(32)))
        assert results == ["v"] * 32
        assert calls == 1
        cache.set("a", {"x": 1}, tags=["t"])
        assert cache.get("a") == {"x": 1}
        assert cache.get_many(["a", "b"]) == {"a": {"x": 1}}
        assert cache.incr("n") == 1
        assert cache.invalidate_tags(["t"]) == 1
        assert cache.exists("a") is False
        assert cache.clear() >= 1


async def test_sync_facade_shares_l1_with_async_cache(make_cache: CacheFactory, cache_kind: str) -> None:
    """A value set through the async API is an in-thread L1 hit through the sync facade."""
    cache = make_cache()
    if "l1" not in cache.stats().tiers:
        pytest.skip("no L1 tier in this configuration")
    await cache.set("k", "v")
    try:
        before = cache.stats().tiers["l1"].hits
        assert cache.sync.get("k") == "v" or cache_kind == "memory+redis"  # redis L1 waits for tracking
        assert cache.stats().tiers["l1"].hits >= before
    finally:
        cache.sync.close()
