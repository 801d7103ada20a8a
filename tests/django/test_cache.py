"""PerfkitCache's extensions and guarantees beyond Django's own suite (tests/django/test_cache_suite.py):
single-flight get_or_set across threads and caches, the default computed in the caller's thread, tags,
delete_pattern, signed values, degraded service with Redis down, OPTIONS checked, the async API."""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.core.cache import caches

from perfkit.cache import Cache
from perfkit.django.cache import PerfkitCache
from perfkit.django.cache_setup import aclose_loop, close_all
from perfkit.errors import BackendUnavailableError, ConfigurationError
from tests.conftest import REDIS_URL, cache_url, free_port, require_redis

BACKEND = "perfkit.django.cache.PerfkitCache"
KINDS = [
    pytest.param("memory", marks=pytest.mark.memory, id="memory"),
    pytest.param("sqlite", marks=pytest.mark.sqlite, id="sqlite"),
    pytest.param("redis", marks=pytest.mark.redis, id="redis"),
    pytest.param("memory+redis", marks=[pytest.mark.redis, pytest.mark.tiered], id="memory+redis"),
]


def entry(location: str, **options: Any) -> dict[str, Any]:
    return {"BACKEND": BACKEND, "LOCATION": location, "OPTIONS": options}


@pytest.fixture
def namespace() -> str:
    return f"dj{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=KINDS)
def django_cache(
    request: pytest.FixtureRequest, settings: Any, tmp_path: Any, namespace: str
) -> Iterator[PerfkitCache]:
    """caches['default'] as a PerfkitCache of the matrix kind, in this test's own namespace."""
    url, l1 = cache_url(str(request.param), tmp_path)
    options = {"namespace": namespace, **({"l1": l1} if l1 else {})}
    settings.CACHES = {"default": entry(url, **options), "other": entry(url, **options, l1_ttl=60.0)}
    backend = caches["default"]
    assert isinstance(backend, PerfkitCache)
    kinds = set(backend.perfkit_cache.stats().tiers)
    assert kinds == ({"l1", "l2"} if l1 else {"l1"} if url.startswith("memory") else {"l2"}), kinds
    yield backend
    backend.clear()
    close_all()


def run_threads(count: int, target: Any) -> list[Any]:
    results: list[Any] = [None] * count
    start = threading.Barrier(count)

    def run(i: int) -> None:
        start.wait(timeout=10)
        results[i] = target(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert not any(t.is_alive() for t in threads)
    return results


def test_get_or_set_runs_the_default_once_across_threads(django_cache: PerfkitCache) -> None:
    """Eight threads missing one key at once: the default runs once and all get its value."""
    calls, entered, release = [], threading.Event(), threading.Event()

    def compute() -> dict[str, int]:
        calls.append(threading.get_ident())
        entered.set()
        assert release.wait(timeout=10)
        return {"answer": 42}

    def call(i: int) -> Any:
        if i == 0:
            assert entered.wait(timeout=10)
            release.set()
        return django_cache.get_or_set("report", compute, 60)

    results = run_threads(8, call)
    assert len(calls) == 1
    assert results == [{"answer": 42}] * 8


def test_get_or_set_computes_in_the_calling_thread(django_cache: PerfkitCache) -> None:
    """The default runs in the thread that called get_or_set (its DB connection, its transaction)."""
    seen: list[int] = []
    value = django_cache.get_or_set("where", lambda: seen.append(threading.get_ident()) or "here", 60)
    assert value == "here" and seen == [threading.get_ident()]
    assert django_cache.get_or_set("where", lambda: seen.append(0) or "again", 60) == "here"
    assert len(seen) == 1


def test_a_failing_default_raises_in_the_caller_and_stores_nothing(django_cache: PerfkitCache) -> None:
    """An exception from the default reaches the caller as is; the key stays absent."""

    def boom() -> None:
        raise LookupError("no such report")

    with pytest.raises(LookupError, match="no such report"):
        django_cache.get_or_set("broken", boom, 60)
    assert django_cache.get("broken", "absent") == "absent"


@pytest.mark.parametrize("django_cache", KINDS[1:], indirect=True)  # a shared store: not memory://
def test_get_or_set_is_single_flight_across_two_caches(django_cache: PerfkitCache) -> None:
    """Two perfkit caches on one shared store (as two processes) compute a missing key once."""
    other = caches["other"]
    assert other.perfkit_cache is not django_cache.perfkit_cache
    calls, entered, release = [], threading.Event(), threading.Event()

    def compute() -> str:
        calls.append(1)
        entered.set()
        assert release.wait(timeout=10)
        return "once"

    def call(i: int) -> Any:
        if i == 0:
            assert entered.wait(timeout=10)
            release.set()
        return (django_cache if i % 2 else other).get_or_set("shared", compute, 60)

    assert run_threads(4, call) == ["once"] * 4
    assert len(calls) == 1


def test_add_is_atomic_across_threads(django_cache: PerfkitCache) -> None:
    """Of eight threads adding one key at once exactly one succeeds, and its value is kept."""
    results = run_threads(8, lambda i: django_cache.add("lock", f"owner-{i}", 60))
    assert results.count(True) == 1
    assert django_cache.get("lock") == f"owner-{results.index(True)}"


def test_invalidate_tags_removes_the_tagged_keys_only(django_cache: PerfkitCache) -> None:
    """set/add/set_many/get_or_set with tags=; invalidate_tags removes those keys and no other."""
    django_cache.set("t1", "a", 60, tags=["org:7"])
    django_cache.set_many({"t2": "b", "t3": "c"}, 60, tags=["org:7", "lists"])
    django_cache.add("t4", "d", 60, tags=["org:8"])
    django_cache.get_or_set("t5", lambda: "e", 60, tags=["org:7"])
    django_cache.set("plain", "f", 60)
    assert django_cache.invalidate_tags(["org:7"]) == 4
    assert django_cache.get_many(["t1", "t2", "t3", "t4", "t5", "plain"]) == {"t4": "d", "plain": "f"}


def test_delete_pattern_respects_prefix_and_version(settings: Any, tmp_path: Any, namespace: str) -> None:
    """delete_pattern removes matching keys of this KEY_PREFIX and VERSION; glob characters in the
    prefix are quoted; other versions and prefixes are kept."""
    require_redis()
    settings.CACHES = {
        "default": {**entry(REDIS_URL, namespace=namespace), "KEY_PREFIX": "site[1]"},
        "v2": {**entry(REDIS_URL, namespace=namespace), "KEY_PREFIX": "site[1]", "VERSION": 2},
        "site1": {**entry(REDIS_URL, namespace=namespace), "KEY_PREFIX": "site1"},
    }
    try:
        one, two, plain = caches["default"], caches["v2"], caches["site1"]
        for name in ("ticket:1", "ticket:2", "user:1"):
            one.set(name, name, 60)
            two.set(name, name, 60)
            plain.set(name, name, 60)
        assert one.delete_pattern("ticket:*") == 2
        assert one.get_many(["ticket:1", "ticket:2", "user:1"]) == {"user:1": "user:1"}
        assert len(two.get_many(["ticket:1", "ticket:2"])) == 2
        assert len(plain.get_many(["ticket:1", "ticket:2"])) == 2
    finally:
        caches["default"].clear()
        close_all()


def test_values_round_trip_by_copy(django_cache: PerfkitCache) -> None:
    """Objects come back equal and as copies (mutating what get returned leaves the cache alone);
    scalars, tuples and large ints keep their types."""
    value = {"ids": [1, 2], "pair": (1, "a"), "big": 2**80}
    django_cache.set("obj", value, 60)
    got = django_cache.get("obj")
    assert got == value and isinstance(got["pair"], tuple)
    got["ids"].append(3)
    assert django_cache.get("obj") == value
    for scalar in ("text", b"\x00bytes", 1.5, True, None, -(2**63)):
        django_cache.set("s", scalar, 60)
        assert django_cache.get("s", "absent") == scalar and type(django_cache.get("s")) is type(scalar)


def test_incr_is_atomic_after_set(django_cache: PerfkitCache) -> None:
    """An int stored by set() is incremented by 4 threads x 25 without a lost update."""
    django_cache.set("hits", 0, 60)
    run_threads(4, lambda i: [django_cache.incr("hits") for _ in range(25)])
    assert django_cache.get("hits") == 100
    with pytest.raises(ValueError, match="not found"):
        django_cache.incr("missing")


class Flag:
    """Records being unpickled: a forged payload must never get that far."""

    unpickled = False

    def __reduce__(self) -> Any:
        return (_mark, ())


def _mark() -> Flag:
    Flag.unpickled = True
    return Flag()


@pytest.mark.redis
def test_pickles_not_signed_here_or_moved_are_refused(
    settings: Any, namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A pickle signed with another SECRET_KEY, or copied under another key, reads as a miss and is
    never unpickled."""
    require_redis()
    settings.CACHES = {"default": entry(REDIS_URL, namespace=namespace)}
    ours = caches["default"]
    raw = redis.Redis.from_url(REDIS_URL)
    try:
        ours.set("a", Flag(), 60)
        stored = [k for k in raw.scan_iter(match=f"*{namespace}*", count=1000) if k.endswith(b":1:a")]
        assert len(stored) == 1
        blob = raw.get(stored[0])
        raw.set(stored[0][:-1] + b"b", blob)  # moved to key "b"
        with caplog.at_level(logging.WARNING, logger="perfkit.cache"):
            assert ours.get("b", "miss") == "miss"
        settings.SECRET_KEY = "another-secret-key-for-this-test"
        rotated = caches.create_connection("default")
        assert rotated.perfkit_cache is not ours.perfkit_cache
        assert rotated.get("a", "miss") == "miss"  # signed with the old key
        assert Flag.unpickled is False
        assert "HMAC" in caplog.text
    finally:
        caches["default"].clear()
        close_all()
        raw.close()


def test_redis_down_degrades_and_never_raises(settings: Any, namespace: str) -> None:
    """With nothing listening: get returns the default, set/add False, set_many every key, get_or_set the
    computed value, delete/has_key answer; only incr raises (BackendUnavailableError: no answer)."""
    settings.CACHES = {
        "default": entry(f"redis://127.0.0.1:{free_port()}/0", namespace=namespace, timeout=0.2)
    }
    down = caches["default"]
    try:
        assert down.get("k", "default") == "default"
        assert down.set("k", "v", 60) is False
        assert down.set_many({"a": 1, "b": 2}, 60) == ["a", "b"]
        assert down.get_or_set("k", lambda: "computed", 60) == "computed"
        assert down.has_key("k") is False
        assert down.delete("k") is False
        assert down.get_many(["a", "b"]) == {}
        assert down.add("new", 1, 60) is False
        with pytest.raises(BackendUnavailableError):
            down.incr("k")
    finally:
        close_all()


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"l2": "redis://"}, "OPTIONS['l2']"),
        ({"serializer": "yaml"}, "OPTIONS['serializer']"),
        ({"MAX_ENTRIES": -1}, "OPTIONS['MAX_ENTRIES']"),
        ({"namespace": ""}, "namespace"),
    ],
)
def test_bad_options_are_refused_by_name(settings: Any, options: dict[str, Any], named: str) -> None:
    """An unknown or invalid OPTIONS key raises ConfigurationError naming it."""
    settings.CACHES = {"default": entry("memory://", **options)}
    with pytest.raises(ConfigurationError, match=f".*{named.replace('[', '.').replace(']', '.')}"):
        caches["default"]


def test_backends_of_all_threads_share_one_perfkit_cache(settings: Any, namespace: str) -> None:
    """Each thread's caches['default'] is its own object over the same perfkit Cache (one L1, one pool)."""
    settings.CACHES = {"default": entry("memory://", namespace=namespace)}
    try:
        mine = caches["default"]
        theirs = run_threads(1, lambda i: caches["default"])[0]
        assert theirs is not mine and theirs.perfkit_cache is mine.perfkit_cache
        assert isinstance(mine.perfkit_cache, Cache)
    finally:
        close_all()


@pytest.mark.parametrize("kind", ["memory", pytest.param("memory+redis", marks=pytest.mark.redis)])
async def test_async_api_is_native_and_single_flight(
    kind: str, settings: Any, tmp_path: Any, namespace: str
) -> None:
    """aget_or_set from 20 tasks runs the default once; aset/aget/atags/adelete_pattern work on the loop."""
    url, l1 = cache_url(kind, tmp_path)
    settings.CACHES = {"default": entry(url, namespace=namespace, **({"l1": l1} if l1 else {}))}
    backend = caches["default"]
    calls = []

    async def compute() -> str:
        calls.append(1)
        await asyncio.sleep(0)
        return "v"

    def default() -> Any:
        return compute()

    try:
        started = asyncio.Event()

        async def one() -> Any:
            await started.wait()
            return await backend.aget_or_set("k", lambda: "v" if calls.append(1) is None else "", 60)

        tasks = [asyncio.ensure_future(one()) for _ in range(20)]
        started.set()
        assert await asyncio.gather(*tasks) == ["v"] * 20
        assert len(calls) == 1
        assert await backend.aset("obj", {"a": (1,)}, 60, tags=["t"]) is True
        assert await backend.aget("obj") == {"a": (1,)}
        assert await backend.ainvalidate_tags(["t"]) == 1
        await backend.aset_many({"p:1": 1, "p:2": 2, "q": 3}, 60)
        assert await backend.adelete_pattern("p:*") == 2
        assert await backend.aget_many(["p:1", "q"]) == {"q": 3}
        assert await backend.aincr("q", 2) == 5
        await backend.aclear()
    finally:
        await aclose_loop()
        await asyncio.to_thread(close_all)


@pytest.mark.django_db
def test_queryset_with_timeout_zero_caches_nothing(settings: Any, namespace: str) -> None:
    """cache.queryset(qs, ttl=0) evaluates the queryset and stores nothing (ttl>0 is dj-orm's helper)."""
    from tests.django.tickets.models import Organization

    settings.CACHES = {"default": entry("memory://", namespace=namespace)}
    try:
        Organization.objects.create(name="acme")
        rows = caches["default"].queryset(Organization.objects.all(), ttl=0)
        assert [o.name for o in rows] == ["acme"]
        assert caches["default"].perfkit_cache.stats().tiers["l1"].sets == 0
    finally:
        close_all()


_CHILD = """
import sys, time, pathlib, django
from django.conf import settings
work, namespace, redis_url = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]
settings.configure(SECRET_KEY="perfkit-tests-only", CACHES={"default": {
    "BACKEND": "perfkit.django.cache.PerfkitCache", "LOCATION": redis_url,
    "OPTIONS": {"namespace": namespace}}})
django.setup()
from django.core.cache import cache

def compute():
    with open(work / "computed", "a") as f:
        f.write("x")
    deadline = time.monotonic() + 10
    while not (work / "release").exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    return "once"

(work / f"ready-{sys.argv[4]}").write_text("")
print(cache.get_or_set("report", compute, 60))
"""


@pytest.mark.redis
@pytest.mark.slow
async def test_get_or_set_runs_the_default_once_across_processes(tmp_path: Any, namespace: str) -> None:
    """Two processes missing one key at once: one runs the default, both print its value."""
    import os
    import sys
    from pathlib import Path

    from tests.conftest import eventually

    require_redis()
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = {**os.environ, "PYTHONPATH": src}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _CHILD,
            str(tmp_path),
            namespace,
            REDIS_URL,
            str(i),
            env=env,
            stdout=asyncio.subprocess.PIPE,
        )
        for i in range(2)
    ]
    try:

        async def both_waiting() -> bool:
            return (
                all((tmp_path / f"ready-{i}").exists() for i in range(2)) and (tmp_path / "computed").exists()
            )

        await eventually(both_waiting, timeout=20, what="both processes in get_or_set")
        (tmp_path / "release").write_text("")
        outs = [await asyncio.wait_for(p.communicate(), 20) for p in procs]
        assert [out.decode().strip() for out, _ in outs] == ["once", "once"]
        assert (tmp_path / "computed").read_text() == "x"
    finally:
        for p in procs:
            if p.returncode is None:
                p.kill()
                await p.wait()
        raw = redis.Redis.from_url(REDIS_URL)
        for key in raw.scan_iter(match=f"*{namespace}*", count=1000):
            raw.delete(key)
        raw.close()


@pytest.mark.redis
def test_a_backend_made_before_fork_works_in_the_child(settings: Any, namespace: str) -> None:
    """A backend used before os.fork() (gunicorn --preload) serves the child through the child's own
    cache instead of waiting forever on the parent's facade thread."""
    import os
    import time

    require_redis()
    settings.CACHES = {"default": entry(REDIS_URL, namespace=namespace)}
    backend = caches["default"]
    try:
        backend.set("before", "fork", 60)  # the parent's facade thread and connections are running
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report what it read, then leave without running pytest's exit
            try:
                backend.set("child", "ok", 60)
                os.write(write, f"{backend.get('before')}-{backend.get('child')}".encode())
            finally:
                os._exit(0)
        os.close(write)
        deadline = time.monotonic() + 20
        while os.waitpid(pid, os.WNOHANG) == (0, 0):
            if time.monotonic() > deadline:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                pytest.fail("the forked child hung on the parent's cache")
            time.sleep(0.01)
        assert os.read(read, 100) == b"fork-ok"
        os.close(read)
        assert backend.get("child") == "ok"
    finally:
        backend.clear()
        close_all()


def test_operations_reach_the_metrics_and_the_request(django_cache: PerfkitCache, namespace: str) -> None:
    """The backend's cache operations are counted in the process collector
    (`cache_operations_total{namespace,...}`) and in the open request's cache count (Server-Timing)."""
    from perfkit.db import track
    from perfkit.metrics import default_collector

    django_cache.set("k", 1)
    with track("/x") as stats:
        assert django_cache.get("k") == 1
        assert django_cache.get("missing") is None
    assert stats.cache_count >= 2
    series = default_collector().families["cache_operations_total"].series
    assert sum(v for labels, v in series.items() if labels[0] == namespace) >= 3
