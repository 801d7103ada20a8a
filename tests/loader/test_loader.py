"""perfkit.loader: batching per tick, request scoping, priorities, dependencies, fallbacks, metrics."""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

import httpx
import pytest

from perfkit.cache import Cache
from perfkit.errors import InvalidArgumentError
from perfkit.loader import (
    BatchResultError,
    Loader,
    LoaderCycleError,
    LoaderScopeMiddleware,
    LoaderTimeoutError,
    NoLoaderScopeError,
    registry,
    scope,
)
from perfkit.metrics import Collector, end_request, start_request

pytestmark = pytest.mark.memory

tenant: contextvars.ContextVar[str] = contextvars.ContextVar("tenant", default="-")


class Recorder:
    """A batch function that records each call's keys (and the tenant it ran for)."""

    def __init__(self, gate: asyncio.Event | None = None) -> None:
        self.calls: list[list[Any]] = []
        self.tenants: list[str] = []
        self.gate = gate

    async def __call__(self, keys: list[Any]) -> list[Any]:
        self.calls.append(list(keys))
        self.tenants.append(tenant.get())
        if self.gate is not None:
            await self.gate.wait()
        return [f"{tenant.get()}:{k}" for k in keys]


def make(batch: Any, **options: Any) -> Loader[Any, Any]:
    options.setdefault("collector", Collector())
    return Loader(batch, **options)


async def test_loads_of_one_tick_are_one_batch_call() -> None:
    """Ten concurrent loads (two duplicates) reach batch_fn as one call with eight distinct keys."""
    rec = Recorder()
    loader = make(rec)
    with scope():
        keys = [1, 2, 3, 4, 5, 6, 7, 8, 1, 2]
        values = await asyncio.gather(*(loader.load(k) for k in keys))
    assert values == [f"-:{k}" for k in keys]
    assert rec.calls == [[1, 2, 3, 4, 5, 6, 7, 8]]


async def test_window_collects_loads_across_ticks() -> None:
    """With window='50ms', loads 5 ms apart share one batch; without a window they are two."""

    async def two_loads(loader: Loader[Any, Any]) -> list[Any]:
        with scope():
            first = loader.load("a")
            await asyncio.sleep(0.005)  # the time between the loads is what this test is about
            second = loader.load("b")
            return list(await asyncio.gather(first, second))

    windowed, tick = Recorder(), Recorder()
    assert await two_loads(make(windowed, window="50ms")) == ["-:a", "-:b"]
    assert await two_loads(make(tick)) == ["-:a", "-:b"]
    assert windowed.calls == [["a", "b"]]
    assert tick.calls == [["a"], ["b"]]


async def test_max_batch_splits_and_critical_keys_go_first() -> None:
    """Over max_batch, the first call holds the critical keys, then high, medium, low (FIFO within one)."""
    rec = Recorder()
    loader = make(rec, max_batch=2)
    with scope():
        await asyncio.gather(
            loader.load("l1", priority="low"),
            loader.load("m1"),
            loader.load("c1", priority="critical"),
            loader.load("h1", priority="high"),
            loader.load("c2", priority="critical"),
        )
    assert rec.calls == [["c1", "c2"], ["h1", "m1"], ["l1"]]


async def test_request_scope_caches_and_never_crosses_requests() -> None:
    """A key is loaded once per request; two concurrent requests (tenants) never share a value or a batch."""
    rec = Recorder()
    loader = make(rec)
    both_loaded = asyncio.Barrier(2)

    async def request(name: str) -> list[str]:
        tenant.set(name)
        with scope():
            first = await loader.load("k")
            await both_loaded.wait()  # the other request has loaded "k" too, in its own scope
            again = await loader.load("k")  # from this request's cache, not the other's
            return [first, again]

    a, b = await asyncio.gather(asyncio.create_task(request("acme")), asyncio.create_task(request("globex")))
    assert a == ["acme:k", "acme:k"]
    assert b == ["globex:k", "globex:k"]
    assert sorted(rec.tenants) == ["acme", "globex"]  # one call per request, each with its own keys
    assert rec.calls == [["k"], ["k"]]
    assert loader.stats()["hits"] == 2


async def test_perfkit_request_context_is_a_scope() -> None:
    """A request perfkit tracks (start_request: its web middleware, perfkit.db.track) is a loader scope."""
    rec = Recorder()
    loader = make(rec)
    stats, token = start_request("/x")
    try:
        await asyncio.gather(loader.load(1), loader.load(2))
        await loader.load(1)
    finally:
        end_request(token)
    assert rec.calls == [[1, 2]]
    assert stats.loaders is not None


async def test_load_outside_any_scope_is_a_clear_error() -> None:
    """Without a scope, load() refuses (a process-wide cache is the leak the scope prevents)."""
    loader = make(Recorder(), name="orphan")
    with pytest.raises(NoLoaderScopeError, match=r"'orphan'.*perfkit\.loader\.scope"):
        loader.load(1)


async def test_unscoped_loader_is_its_own_scope() -> None:
    """scoped=False: the instance holds its cache (one loader per request, the aiodataloader way)."""
    rec = Recorder()
    loader = make(rec, scoped=False)
    assert await loader.load(1) == "-:1"
    assert await loader.load(1) == "-:1"
    assert rec.calls == [[1]]


async def test_asgi_middleware_opens_one_scope_per_request() -> None:
    """LoaderScopeMiddleware: each HTTP request batches its own loads and starts with an empty cache."""
    rec = Recorder()
    loader = make(rec)

    async def app(scope_: dict[str, Any], receive: Any, send: Any) -> None:
        a, b = await asyncio.gather(loader.load("x"), loader.load("y"))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": f"{a},{b}".encode()})

    transport = httpx.ASGITransport(app=LoaderScopeMiddleware(app))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/")).text == "-:x,-:y"
        assert (await client.get("/")).text == "-:x,-:y"
    assert rec.calls == [["x", "y"], ["x", "y"]]  # the second request did not see the first's cache


async def test_dependencies_load_first_and_cycles_are_refused() -> None:
    """after=[(loader, key)] loads the dependency first; a cycle raises LoaderCycleError at load()."""
    order: list[Any] = []

    async def batch(keys: list[Any]) -> list[Any]:
        order.append(list(keys))
        return keys

    loader = make(batch)
    with scope():
        assert await loader.load("page", after=[(loader, "layout"), (loader, "theme")]) == "page"
        assert order == [["layout", "theme"], ["page"]]
        with pytest.raises(LoaderCycleError, match="'layout' -> 'page'"):
            loader.load("layout", after=[(loader, "page")])
        with pytest.raises(LoaderCycleError):
            loader.load("self", after=[(loader, "self")])
        with pytest.raises(InvalidArgumentError, match="neither an awaitable"):
            loader.load("x", after=[42])


async def test_fallback_on_timeout_and_error_is_counted() -> None:
    """A batch past `timeout` or raising gives each key its fallback (value or callable); both counted."""
    gate = asyncio.Event()
    slow = make(Recorder(gate), timeout=0.05, fallback="placeholder", name="slow")
    with scope():
        assert await slow.load(1) == "placeholder"
    assert slow.stats()["timeouts"] == 1
    assert slow.stats()["fallbacks"] == 1

    async def broken(keys: list[Any]) -> list[Any]:
        raise ConnectionError("down")

    calls: list[tuple[Any, str]] = []
    failing = make(broken, fallback=lambda key, exc: calls.append((key, type(exc).__name__)) or f"fb{key}")
    with scope():
        assert await asyncio.gather(failing.load(1), failing.load(2)) == ["fb1", "fb2"]
    assert calls == [(1, "ConnectionError"), (2, "ConnectionError")]
    assert failing.stats()["errors"] == 1 and failing.stats()["fallbacks"] == 2


async def test_without_fallback_errors_reach_the_caller_and_are_retried() -> None:
    """No fallback: the timeout is LoaderTimeoutError, an error is itself, and the key is not cached."""
    gate = asyncio.Event()
    loader = make(Recorder(gate), timeout=0.05)
    with scope():
        with pytest.raises(LoaderTimeoutError, match=r"longer than 0\.05s"):
            await loader.load(1)
        gate.set()
        assert await loader.load(1) == "-:1"  # tried again, not the cached failure


async def test_per_key_exceptions_and_wrong_shapes() -> None:
    """An exception as a value fails that key only; a result of the wrong length is BatchResultError."""

    async def batch(keys: list[int]) -> list[Any]:
        return [ValueError(f"no {k}") if k == 2 else k for k in keys]

    loader = make(batch)
    with scope():
        one, two = await asyncio.gather(loader.load(1), loader.load(2), return_exceptions=True)
    assert one == 1 and isinstance(two, ValueError)

    short = make(lambda keys: keys[:-1])
    with scope(), pytest.raises(BatchResultError, match="1 values for 2 keys"):
        await asyncio.gather(short.load(1), short.load(2))

    mapping = make(lambda keys: {k: k * 10 for k in keys if k != 3})  # a sync batch_fn returning a mapping
    with scope():
        assert await mapping.load_many([1, 3]) == [10, None]


async def test_prime_and_preload() -> None:
    """prime() answers without a batch; preload() fetches at low priority before anyone awaits."""
    rec = Recorder()
    loader = make(rec)
    with scope():
        loader.prime("p", "primed")
        assert await loader.load("p") == "primed"
        loader.preload(["a", "b"])
        await asyncio.sleep(0)  # the tick the preload dispatches on
        await asyncio.sleep(0)
        assert rec.calls == [["a", "b"]]
        assert await loader.load("a") == "-:a"  # already there: a hit
    assert rec.calls == [["a", "b"]]
    stats = loader.stats()
    assert (stats["loads"], stats["hits"], stats["misses"]) == (4, 2, 2)


async def test_metrics_reach_the_collector_and_stats() -> None:
    """Batch sizes, waits, hits and misses are in stats() and in the collector's loader_* families."""
    collector = Collector()
    loader = Loader(Recorder(), name="metrics-test", collector=collector)
    assert collector.families == {}  # a Loader made at import registers nothing until it loads
    with scope():
        await asyncio.gather(*(loader.load(k) for k in range(5)))
        await loader.load(0)
    stats = loader.stats()
    assert stats["batch_size"]["max"] == 5 and stats["batches"] == 1
    assert stats["hit_ratio"] == round(1 / 6, 4)
    assert stats["wait_ms"]["max"] >= 0
    loads = collector.counter("loader_loads_total", ("loader", "outcome"))
    assert (loads.value(("metrics-test", "miss")), loads.value(("metrics-test", "hit"))) == (5, 1)
    assert collector.histogram("loader_batch_size", ("loader",)).count(("metrics-test",)) == 1
    assert registry()["metrics-test"] is loader


async def test_shared_cache_crosses_requests_but_not_tenants() -> None:
    """With cache=, a second request is served from the shared cache; another tenant's partition is not."""
    rec = Recorder()
    async with Cache("memory://", namespace="loader-shared") as cache:
        loader = make(rec, cache=cache, ttl=60, partition=tenant.get)

        async def request(name: str) -> str:
            tenant.set(name)
            with scope():
                return await loader.load("k")

        assert await asyncio.create_task(request("acme")) == "acme:k"
        assert await asyncio.create_task(request("acme")) == "acme:k"  # shared hit
        assert await asyncio.create_task(request("globex")) == "globex:k"  # its own partition
    assert rec.tenants == ["acme", "globex"]
    assert loader.stats()["shared_hits"] == 1


async def test_bad_arguments_are_named() -> None:
    """max_batch, window, an unhashable key and depends_on without cache are refused naming the problem."""
    with pytest.raises(InvalidArgumentError, match="max_batch"):
        Loader(Recorder(), max_batch=0)
    with pytest.raises(InvalidArgumentError, match="window"):
        Loader(Recorder(), window="soon")
    with pytest.raises(InvalidArgumentError, match="need cache="):
        Loader(Recorder(), depends_on=["x"])
    loader = make(Recorder())
    with scope(), pytest.raises(InvalidArgumentError, match="not hashable"):
        loader.load(["a"])
