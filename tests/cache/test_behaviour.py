"""The behaviour every cache backend shares, run on memory, SQLite, Redis and both tiered setups."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import pytest

from perfkit import Cache, InvalidArgumentError, InvalidKeyError, SerializationError, ValueTooLargeError
from tests.conftest import CacheFactory, pass_time


async def test_set_get_roundtrip(cache: Cache) -> None:
    """Values of the common web types come back equal."""
    value = {
        "id": 7,
        "name": "Ticket ✓",
        "tags": ["a", "b"],
        "score": 1.5,
        "raw": b"\x00\x01",
        "ok": True,
        "at": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
    }
    await cache.set("k", value, ttl=60)
    got = await cache.get("k")
    assert got == value


async def test_json_like_types_come_back_as_documented(cache: Cache, cache_kind: str) -> None:
    """Serialized tiers return UUIDs as str and tuples as lists (documented); memory returns the object."""
    await cache.set("k", {"uid": uuid.UUID(int=5), "pair": (1, 2)})
    got = await cache.get("k")
    if cache_kind == "memory":
        assert got == {"uid": uuid.UUID(int=5), "pair": (1, 2)}
    else:
        assert got in (
            {"uid": "00000000-0000-0000-0000-000000000005", "pair": [1, 2]},
            {"uid": uuid.UUID(int=5), "pair": (1, 2)},
        )  # an L1 copy from this process's own set


async def test_missing_key_returns_default(cache: Cache) -> None:
    """A miss returns the default, None unless given."""
    assert await cache.get("nope") is None
    assert await cache.get("nope", default="d") == "d"


async def test_cached_none_is_a_hit(cache: Cache) -> None:
    """A cached None is returned as None, not the default, and the loader is not called again."""
    await cache.set("n", None)
    assert await cache.get("n", default="d") is None
    assert await cache.exists("n")
    calls = 0

    def loader() -> str:
        nonlocal calls
        calls += 1
        return "loaded"

    assert await cache.get_or_set("n", loader) is None
    assert calls == 0


async def test_delete_and_exists(cache: Cache) -> None:
    """delete removes the key and reports whether it was there."""
    await cache.set("d", 1)
    assert await cache.exists("d")
    assert await cache.delete("d") is True
    assert not await cache.exists("d")
    assert await cache.delete("d") is False


async def test_get_many_set_many(cache: Cache) -> None:
    """set_many stores all; get_many returns the present keys only."""
    await cache.set_many({"a": 1, "b": [2], "c": None}, ttl=60)
    assert await cache.get_many(["a", "b", "c", "zz"]) == {"a": 1, "b": [2], "c": None}


async def test_incr(cache: Cache) -> None:
    """incr creates at delta, adds atomically, and the counter reads back as an int."""
    assert await cache.incr("cnt") == 1
    assert await cache.incr("cnt", delta=10) == 11
    assert await cache.incr("cnt", delta=-1) == 10
    assert await cache.get("cnt") == 10
    results = await asyncio.gather(*[cache.incr("par") for _ in range(50)])
    assert sorted(results) == list(range(1, 51))


async def test_incr_on_non_integer_is_a_clear_error(cache: Cache) -> None:
    """incr on a key holding a string names the key."""
    await cache.set("s", "text")
    with pytest.raises(SerializationError, match="'s'"):
        await cache.incr("s")


async def test_ttl_expiry(cache: Cache) -> None:
    """A value is gone once its ttl has passed; ttl=None keeps it."""
    await cache.set("short", "v", ttl=0.05)
    await cache.set("forever", "v", ttl=None)
    assert await cache.get("short") == "v"
    await pass_time(0.12)
    assert await cache.get("short") is None
    assert await cache.get("forever") == "v"


async def test_default_ttl_applies(make_cache: CacheFactory) -> None:
    """Without ttl=, the cache's default_ttl is used."""
    cache = make_cache(default_ttl=0.05)
    await cache.set("k", 1)
    await pass_time(0.12)
    assert await cache.get("k") is None


async def test_tags_invalidate_only_tagged_keys(cache: Cache) -> None:
    """invalidate_tags removes every key carrying a tag and nothing else."""
    await cache.set("t1", 1, tags=["org:1"])
    await cache.set("t2", 2, tags=["org:1", "users"])
    await cache.set("t3", 3, tags=["org:2"])
    await cache.set("plain", 4)
    removed = await cache.invalidate_tags(["org:1"])
    assert removed == 2
    assert await cache.get_many(["t1", "t2", "t3", "plain"]) == {"t3": 3, "plain": 4}
    assert await cache.invalidate_tags(["org:1"]) == 0


async def test_get_or_set_tags_from_the_loaded_value(cache: Cache) -> None:
    """get_or_set(tags=callable) tags the entry with tags computed from the value it loaded."""
    value = await cache.get_or_set("doc", lambda: {"org": 7}, tags=lambda v: [f"org:{v['org']}"])
    assert value == {"org": 7}
    assert await cache.invalidate_tags(["org:8"]) == 0
    assert await cache.invalidate_tags(["org:7"]) == 1
    assert await cache.get("doc") is None


async def test_tags_with_set_many(cache: Cache) -> None:
    """Tags given to set_many apply to every key."""
    await cache.set_many({"x": 1, "y": 2}, tags=["batch"])
    assert await cache.invalidate_tags(["batch"]) == 2
    assert await cache.get_many(["x", "y"]) == {}


async def test_delete_match(cache: Cache) -> None:
    """delete_match removes keys matching a glob within the namespace."""
    for i in range(5):
        await cache.set(f"presentation:{i}", i)
    await cache.set("other:1", 1)
    assert await cache.delete_match("presentation:*") == 5
    assert await cache.get("presentation:3") is None
    assert await cache.get("other:1") == 1


async def test_clear_touches_only_its_namespace(make_cache: CacheFactory, namespace: str) -> None:
    """clear() empties this namespace and leaves another namespace alone."""
    mine = make_cache()
    other = make_cache(namespace=namespace + "x")
    await mine.set("k", 1, tags=["t"])
    await other.set("k", 2)
    await mine.clear()
    assert await mine.get("k") is None
    assert await other.get("k") == 2


async def test_get_or_set_sync_and_async_loaders(cache: Cache) -> None:
    """get_or_set accepts plain and async loaders and caches their result."""

    async def aload() -> str:
        return "async"

    assert await cache.get_or_set("a", aload) == "async"
    assert await cache.get_or_set("s", lambda: "sync") == "sync"
    assert await cache.get("a") == "async"
    assert await cache.get("s") == "sync"


async def test_loader_error_propagates_and_caches_nothing(cache: Cache) -> None:
    """A failing loader raises to the caller and leaves no entry behind."""

    def boom() -> str:
        raise RuntimeError("db down")

    with pytest.raises(RuntimeError, match="db down"):
        await cache.get_or_set("e", boom)
    assert not await cache.exists("e")


async def test_stampede_1000_callers_one_loader(cache: Cache) -> None:
    """1,000 concurrent callers on a cold key: one loader call, no errors, one value."""
    calls = 0
    started, gate = asyncio.Event(), asyncio.Event()

    async def loader() -> dict[str, int]:
        nonlocal calls
        calls += 1
        started.set()
        await gate.wait()
        return {"v": 42}

    tasks = [asyncio.ensure_future(cache.get_or_set("cold", loader, ttl=60)) for _ in range(1000)]
    await started.wait()  # every caller has queued behind the one load by now
    gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert calls == 1
    assert [r for r in results if isinstance(r, BaseException)] == []
    assert all(r == {"v": 42} for r in results)
    assert [t.errors for t in cache.stats().tiers.values()] == [0] * len(cache.stats().tiers)


async def test_cancelled_caller_does_not_cancel_the_load(cache: Cache) -> None:
    """When one waiting caller is cancelled, the others still get the loaded value."""
    started, gate = asyncio.Event(), asyncio.Event()

    async def loader() -> int:
        started.set()
        await gate.wait()
        return 5

    first = asyncio.ensure_future(cache.get_or_set("c", loader))
    second = asyncio.ensure_future(cache.get_or_set("c", loader))
    await started.wait()
    first.cancel()
    gate.set()
    assert await second == 5
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_bad_keys_are_refused(cache: Cache) -> None:
    """Empty and non-string keys raise InvalidKeyError and store nothing."""
    with pytest.raises(InvalidKeyError, match="empty"):
        await cache.set("", 1)
    with pytest.raises(InvalidKeyError, match="int"):
        await cache.get(123)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        await cache.set(None, 1)  # type: ignore[arg-type]


async def test_long_keys_are_hashed_deterministically(cache: Cache) -> None:
    """Keys over the limit are stored under a digest: same key same entry, different keys apart."""
    a, b = "x" * 5000 + "a", "x" * 5000 + "b"
    await cache.set(a, "A")
    await cache.set(b, "B")
    assert await cache.get(a) == "A"
    assert await cache.get(b) == "B"


async def test_bad_ttl_and_tags_are_refused(cache: Cache) -> None:
    """Negative or zero TTLs and a bare-string tags argument are refused with the key named."""
    with pytest.raises(InvalidArgumentError, match=r"'k'.*> 0"):
        await cache.set("k", 1, ttl=-1)
    with pytest.raises(InvalidArgumentError):
        await cache.set("k", 1, ttl=0)
    with pytest.raises(InvalidArgumentError, match="list of strings"):
        await cache.set("k", 1, tags="org:1")  # type: ignore[arg-type]
    assert not await cache.exists("k")


async def test_timedelta_ttl(cache: Cache) -> None:
    """A timedelta is accepted as ttl."""
    await cache.set("k", 1, ttl=dt.timedelta(minutes=5))
    assert await cache.get("k") == 1


async def test_stats_count_hits_and_misses(cache: Cache) -> None:
    """stats() reports hits, misses and the hit ratio, overall and per tier."""
    await cache.set("k", 1)
    for _ in range(8):
        await cache.get("k")
    await cache.get("missing")
    await cache.get("missing2")
    stats = cache.stats()
    assert stats.hits == 8
    assert stats.misses == 2
    assert stats.hit_ratio == pytest.approx(0.8)
    assert stats.as_dict()["hit_ratio"] == pytest.approx(0.8)


async def test_observer_hook_sees_every_tier_operation(make_cache: CacheFactory) -> None:
    """An added observer receives (namespace, tier, op, outcome, seconds) for each tier operation."""
    seen: list[tuple[str, str, str, str]] = []
    cache = make_cache(observers=[lambda ns, tier, op, outcome, s: seen.append((ns, tier, op, outcome))])
    await cache.set("k", 1)
    await cache.get("k")
    ops = {(tier, op, outcome) for _, tier, op, outcome in seen}
    assert any(op == "set" for _, op, _ in ops)
    assert any(op == "get" and outcome == "hit" for _, op, outcome in ops)
    assert {ns for ns, *_ in seen} == {cache.namespace}


@pytest.mark.parametrize("payload", [object(), {1, 2}.__iter__()])
async def test_unserializable_value_is_a_clear_type_error(make_cache: CacheFactory, payload: object) -> None:
    """A value the serializer cannot encode raises a TypeError naming the key and the type, on the
    memory tier too (it checks what an L2 would refuse)."""
    cache = make_cache()
    with pytest.raises(TypeError, match=rf"'bad'.*{type(payload).__name__}"):
        await cache.set("bad", payload)
    assert not await cache.exists("bad")


async def test_value_over_max_size_is_refused_and_harms_nothing(make_cache: CacheFactory) -> None:
    """A value over max_value_size raises ValueTooLargeError on every tier; other keys are intact."""
    cache = make_cache(max_value_size=1000)
    await cache.set("ok", "small")
    with pytest.raises(ValueTooLargeError, match=r"'big'.*max_value_size=1000"):
        await cache.set("big", "x" * 5000)
    assert await cache.get("ok") == "small"
    assert not await cache.exists("big")


async def test_default_size_limit_applies_on_every_tier(make_cache: CacheFactory) -> None:
    """A 20 MB value is refused under the default 16 MiB limit on memory exactly as on Redis/SQLite,
    through set, set_many and get_or_set alike."""
    cache = make_cache()
    big = b"x" * (20 * 1024 * 1024)
    with pytest.raises(ValueTooLargeError, match="'big'"):
        await cache.set("big", big)
    with pytest.raises(ValueTooLargeError, match="'big2'"):
        await cache.set_many({"fine": 1, "big2": big})
    with pytest.raises(ValueTooLargeError, match="'big3'"):
        await cache.get_or_set("big3", lambda: big)
    assert await cache.get_many(["big", "big2", "big3"]) == {}


async def test_deeply_nested_value_is_a_serialization_error(make_cache: CacheFactory) -> None:
    """A value nested 100k deep raises SerializationError naming the key, never a RecursionError."""
    cache = make_cache()
    deep: list[object] = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(SerializationError, match=r"'deep'.*nested too deeply"):
        await cache.set("deep", deep)
    assert not await cache.exists("deep")


async def test_load_overlapping_an_invalidation_is_not_stored(cache: Cache) -> None:
    """The stale-set race: a value loaded while its tag was invalidated is returned but not cached."""
    started, release = asyncio.Event(), asyncio.Event()

    async def loader() -> str:
        started.set()
        await release.wait()  # the reader has read pre-commit data and is about to store it
        return "old"

    task = asyncio.ensure_future(cache.get_or_set("k", loader, tags=["org:7"]))
    await started.wait()
    await cache.invalidate_tags(["org:7"])  # the writer commits and invalidates meanwhile
    release.set()
    assert await task == "old"
    assert not await cache.exists("k")
    assert await cache.get_or_set("k", lambda: "new", tags=["org:7"]) == "new"
    assert await cache.get("k") == "new"
