"""Shared fixtures: the real services and the backend matrix every shared cache behaviour runs on."""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

import pytest
from redis.asyncio.cluster import RedisCluster

from perfkit import Cache
from perfkit.cache.backends.redis_cluster import close_cluster_client
from tests._cluster import LocalCluster, binaries_missing, start_cluster

REDIS_URL = os.environ.get("PERFKIT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
# an existing cluster (`redis+cluster://host:port`); unset, the tests start their own (tests/_cluster.py)
REDIS_CLUSTER_URL = os.environ.get("PERFKIT_TEST_REDIS_CLUSTER_URL")
POSTGRES_URL = os.environ.get("PERFKIT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _reachable(url: str, default_port: int) -> str | None:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=1):
            return None
    except OSError as exc:
        return str(exc)


def under_ci() -> bool:
    """CI=true (or 1, yes), as GitHub Actions, GitLab CI and `bash .ci/run` set it."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def service_missing(message: str) -> NoReturn:
    """A service the test needs is missing: a loud skip on a developer's machine; under CI, a failure,
    so that a green CI run cannot have skipped the Redis or PostgreSQL tests."""
    if under_ci():
        pytest.fail(
            f"{message} [CI=true: a missing service fails the run instead of skipping]", pytrace=False
        )
    pytest.skip(message)


def redis_missing() -> str | None:
    err = _reachable(REDIS_URL, 6379)
    if err:
        return f"REDIS NOT REACHABLE at {REDIS_URL} ({err}): start it (bash .ci/run does) to run Redis tests"
    return None


def postgres_missing() -> str | None:
    err = _reachable(POSTGRES_URL, 5432)
    if err:
        return f"POSTGRESQL NOT REACHABLE at {POSTGRES_URL} ({err}): start it to run PostgreSQL tests"
    return None


def require_redis() -> None:
    if (why := redis_missing()) is not None:
        service_missing(why)


def require_postgres() -> None:
    if (why := postgres_missing()) is not None:
        service_missing(why)


def pytest_configure(config: pytest.Config) -> None:
    """The Django project of tests/django/ (pytest-django sets Django up after this hook)."""
    from django.conf import settings

    from tests.django.project import settings as project

    if not settings.configured:
        settings.configure(**{k: v for k, v in vars(project).items() if k.isupper()})


def pytest_sessionstart(session: pytest.Session) -> None:
    """Under CI, an unreachable Redis or PostgreSQL fails the whole run before any test: some modules
    decide to skip at collection, and none of those skips may turn a CI run green."""
    if not under_ci():
        return
    missing = [why for why in (redis_missing(), postgres_missing()) if why is not None]
    if missing:
        pytest.exit("CI=true and a service the suite needs is missing: " + "; ".join(missing), returncode=1)


CACHE_KINDS = [
    pytest.param("memory", marks=pytest.mark.memory, id="memory"),
    pytest.param("sqlite", marks=pytest.mark.sqlite, id="sqlite"),
    pytest.param("redis", marks=pytest.mark.redis, id="redis"),
    pytest.param("memory+redis", marks=[pytest.mark.redis, pytest.mark.tiered], id="memory+redis"),
    pytest.param("memory+sqlite", marks=[pytest.mark.sqlite, pytest.mark.tiered], id="memory+sqlite"),
    pytest.param("redis-cluster", marks=pytest.mark.redis_cluster, id="redis-cluster"),
    pytest.param(
        "memory+redis-cluster",
        marks=[pytest.mark.redis_cluster, pytest.mark.tiered],
        id="memory+redis-cluster",
    ),
]
_EXPECTED_TIERS = {
    "memory": {"l1": "memory"},
    "sqlite": {"l2": "sqlite"},
    "redis": {"l2": "redis"},
    "memory+redis": {"l1": "memory", "l2": "redis"},
    "memory+sqlite": {"l1": "memory", "l2": "sqlite"},
    "redis-cluster": {"l2": "redis-cluster"},
    "memory+redis-cluster": {"l1": "memory", "l2": "redis-cluster"},
}

CacheFactory = Callable[..., Cache]


def cache_url(kind: str, tmp_path: Any, cluster_url: str | None = None) -> tuple[str, str | None]:
    """(url, l1) for a matrix kind; cluster kinds need the `redis_cluster_url` fixture's URL."""
    base = kind.split("+")[-1]
    if base == "redis":
        require_redis()
    l2 = {
        "memory": "memory://?max_size=100000",
        "sqlite": f"sqlite:///{tmp_path}/cache.db",
        "redis": REDIS_URL,
        "redis-cluster": cluster_url or "",
    }
    return l2[base], ("memory://?max_size=100000" if "+" in kind else None)


@pytest.fixture(scope="session")
def redis_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis Cluster for the session: PERFKIT_TEST_REDIS_CLUSTER_URL, else three local nodes."""
    if REDIS_CLUSTER_URL:
        yield REDIS_CLUSTER_URL
        return
    why = binaries_missing()
    if why:
        service_missing(
            f"REDIS CLUSTER TESTS SKIPPED: {why}; install redis-server (apt-get install redis-server) "
            "or set PERFKIT_TEST_REDIS_CLUSTER_URL=redis+cluster://host:port"
        )
    cluster = start_cluster(tmp_path_factory.mktemp("redis-cluster"))
    try:
        yield cluster.url
    finally:
        cluster.stop()


@pytest.fixture
def private_cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    """A cluster of the test's own, for a test that kills or adds nodes; stopped afterwards by pid."""
    why = binaries_missing()
    if why:
        service_missing(f"REDIS CLUSTER TESTS SKIPPED: {why}")
    cluster = start_cluster(tmp_path)
    yield cluster
    cluster.stop()


@pytest.fixture
async def raw_cluster(redis_cluster_url: str) -> AsyncIterator[RedisCluster]:
    """A plain redis-py cluster client on the session's cluster, to look at what a backend wrote."""
    client = RedisCluster.from_url(redis_cluster_url.replace("+cluster", "", 1))
    await client.initialize()
    yield client
    await close_cluster_client(client)


def one_per_primary(client: RedisCluster, key_of: Callable[[str], str], base: str) -> dict[str, str]:
    """One name per primary, {node name: name}: the first `base-<i>` whose key `key_of(name)` is there."""
    found: dict[str, str] = {}
    primaries = {node.name for node in client.get_primaries()}
    i = 0
    while set(found) != primaries:
        name = f"{base}-{i}"
        node = client.nodes_manager.get_node_from_slot(client.keyslot(key_of(name)))
        found.setdefault(node.name, name)
        i += 1
    return found


@pytest.fixture(params=CACHE_KINDS)
def cache_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def namespace() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def make_cache(
    request: pytest.FixtureRequest, cache_kind: str, tmp_path: Any, namespace: str
) -> AsyncIterator[CacheFactory]:
    """Builds caches of the matrix kind in a namespace of this test's own, cleared and closed afterwards."""
    made: list[Cache] = []
    cluster = request.getfixturevalue("redis_cluster_url") if "cluster" in cache_kind else None

    def make(**options: Any) -> Cache:
        url, l1 = cache_url(cache_kind, tmp_path, cluster)
        options.setdefault("namespace", namespace)
        cache = Cache(url, l1=l1, **options)
        tiers = {name: t.backend for name, t in cache.stats().tiers.items()}
        assert tiers == _EXPECTED_TIERS[cache_kind], f"asked for {cache_kind}, got {tiers}"
        made.append(cache)
        return cache

    yield make
    for cache in made:
        try:
            await cache.clear()
        finally:
            await cache.close()


@pytest.fixture
async def cache(make_cache: CacheFactory) -> Cache:
    return make_cache()


async def eventually(
    check: Callable[[], Awaitable[bool]],
    timeout: float = 3.0,
    what: str = "condition",
    max_interval: float = 0.002,
) -> float:
    """Poll `check` until it is true; returns the seconds it took. Only for state another process owns
    (nothing there to await); `max_interval` lets slow checks (reading a log, a table) back off."""
    start = time.monotonic()
    interval = 0.002
    while not await check():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{what} not reached within {timeout}s")
        await asyncio.sleep(interval)
        interval = min(max_interval, interval * 1.5)
    return time.monotonic() - start


async def pass_time(seconds: float) -> None:
    """Let wall-clock time pass, for TTL expiry: nothing to await but the clock."""
    await asyncio.sleep(seconds)
