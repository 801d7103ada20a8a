"""perfkit.redisclient: the one place Redis clients are made, driver errors translated and Lua loaded."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError

from perfkit.backends import parse_url
from perfkit.cache.backends.redis import RedisBackend as CacheRedis
from perfkit.cache.backends.redis_cluster import RedisClusterBackend as CacheCluster
from perfkit.errors import BackendError, BackendUnavailableError
from perfkit.jobs.backends.redis import RedisBackend as JobsRedis
from perfkit.jobs.backends.redis_cluster import RedisClusterBackend as JobsCluster
from perfkit.monitor.store.redis import RedisStore
from perfkit.monitor.store.redis_cluster import RedisClusterStore
from perfkit.redisclient import (
    CACHE_ERRORS,
    JOBS_ERRORS,
    MONITOR_ERRORS,
    RATELIMIT_ERRORS,
    BoundedPool,
    Translator,
    cache_options,
    close_client,
    connection_kwargs,
    make_client,
)
from perfkit.redisclient.scripts import lua_names, lua_script
from perfkit.web.config import RateLimit
from perfkit.web.ratelimit.redis import RedisRateLimit
from perfkit.web.ratelimit.redis_cluster import RedisClusterRateLimit

from . import _redis_server
from .conftest import REDIS_URL, free_port, require_redis

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "perfkit"
SECRET = "hunter2"
# a client or pool built by hand: Redis(...), Redis.from_url(...), RedisCluster(...), ConnectionPool(...)
_CONSTRUCTION = re.compile(r"\b(?:Redis|RedisCluster|ConnectionPool|BlockingConnectionPool)(?:\.from_url)?\(")
LUA_PACKAGES = (
    "perfkit.cache.backends",
    "perfkit.jobs.backends",
    "perfkit.web.ratelimit",
    "perfkit.monitor.store",
    "perfkit.realtime",
)


def _constructions(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [
        f"{path.relative_to(SRC)}:{n}: {ln.strip()}"
        for n, ln in enumerate(lines, 1)
        if _CONSTRUCTION.search(ln)
    ]


def test_no_redis_client_is_made_outside_redisclient() -> None:
    """No Redis.from_url / RedisCluster( / pool construction in src/ outside perfkit/redisclient/."""
    outside = [p for p in SRC.rglob("*.py") if "redisclient" not in p.relative_to(SRC).parts]
    assert [hit for path in outside for hit in _constructions(path)] == []
    inside = [hit for path in (SRC / "redisclient").glob("*.py") for hit in _constructions(path)]
    assert len(inside) >= 3  # the pattern does find constructions: the ones that belong there


def _retries(client: Any) -> int | None:
    """How many times the client retries a failed command; None: redis-py's default Retry."""
    retry = client.retry if isinstance(client, RedisCluster) else connection_kwargs(client).get("retry")
    return None if retry is None else int(retry.get_retries())


async def test_each_use_keeps_its_client_settings() -> None:
    """Cache: short timeout, no retries, bounded pool; jobs: 5 s, health checks, RESP2; ratelimit and
    monitor: their timeout with redis-py's pool and retries (on a cluster: none, 64 per node)."""
    one = parse_url("redis://127.0.0.1:6379/3?prefix=p")
    cluster = parse_url("redis+cluster://127.0.0.1:7000?prefix=p&nodes=127.0.0.1:7001")
    clients = {
        "cache": CacheRedis(parse_url("redis://127.0.0.1:6379/3"), timeout=0.4).client,
        "cache-cluster": CacheCluster(parse_url("redis+cluster://127.0.0.1:7000"), timeout=0.4).client,
        "jobs": JobsRedis(one, max_connections=33).client,
        "jobs-cluster": JobsCluster(cluster).client,
        "ratelimit": RedisRateLimit(one, timeout=0.2).client,
        "ratelimit-cluster": RedisClusterRateLimit(cluster, timeout=0.2).client,
        "monitor": RedisStore(one)._redis,
        "monitor-cluster": RedisClusterStore(cluster)._redis,
    }
    seen = {}
    for name, client in clients.items():
        kw = connection_kwargs(client)
        seen[name] = (
            type(client).__name__,
            kw.get("socket_timeout"),
            kw.get("socket_connect_timeout"),
            kw.get("health_check_interval"),
            kw.get("protocol"),
            _retries(client),
        )
    assert seen == {
        "cache": ("Multiplexed", 0.4, 0.4, None, None, None),  # one connection, no retries at all
        "cache-cluster": ("RedisCluster", 0.4, 0.4, 0, None, 0),
        "jobs": ("Redis", 5.0, 5, 30, 2, None),
        "jobs-cluster": ("RedisCluster", 5.0, 5, 30, 2, clients["jobs-cluster"].retry.get_retries()),
        "ratelimit": ("Redis", 0.2, 0.2, None, None, None),
        "ratelimit-cluster": ("RedisCluster", 0.2, 0.2, 0, None, 0),
        "monitor": ("Redis", 2.0, 2.0, None, None, None),
        "monitor-cluster": ("RedisCluster", 2.0, 2.0, 0, None, 0),
    }
    assert connection_kwargs(clients["ratelimit"]).get("retry_on_timeout") is False
    subscribers = make_client(one, cache_options(one, timeout=0.4))  # coherence's: a bounded pool
    pool = subscribers.connection_pool
    assert isinstance(pool, BoundedPool) and pool.max_connections == 64
    await close_client(subscribers)
    assert clients["jobs"].connection_pool.max_connections == 33
    assert [str(n) for n in clients["monitor-cluster"].nodes_manager.startup_nodes] == [
        "127.0.0.1:7000",
        "127.0.0.1:7001",
    ]
    for client in clients.values():
        await close_client(client)


async def _real_errors() -> tuple[RedisError, RedisError]:
    """A ResponseError from the shared Redis and a ConnectionError from a port nothing listens on."""
    require_redis()
    url = parse_url(REDIS_URL)
    client = make_client(url, cache_options(url, timeout=2.0))
    key = f"perfkit-test:redisclient:{uuid.uuid4().hex}"
    try:
        await client.set(key, "text")
        with pytest.raises(ResponseError) as wrong_type:
            await client.lpush(key, "x")
    finally:
        await client.delete(key)
        await close_client(client)
    dead = parse_url(f"redis://:{SECRET}@127.0.0.1:{free_port()}/0")
    client = make_client(dead, cache_options(dead, timeout=0.5))
    try:
        with pytest.raises(RedisConnectionError) as refused:
            await client.ping()
    finally:
        await close_client(client)
    return wrong_type.value, refused.value


async def test_driver_errors_translate_per_use_with_credentials_redacted() -> None:
    """An outage becomes BackendUnavailableError, a command error BackendError, each worded as its
    user always did (the monitor store: BackendError for both; the rate limiter: unavailable for both)."""
    wrong_type, refused = await _real_errors()
    where, shown = f"redis://:{SECRET}@127.0.0.1:1/0", "redis://:***@127.0.0.1:1/0"
    cases = [
        (CACHE_ERRORS, refused, BackendUnavailableError, f"Redis at {shown} is unavailable: {refused}"),
        (CACHE_ERRORS, wrong_type, BackendError, f"Redis at {shown}: {wrong_type}"),
        (JOBS_ERRORS, refused, BackendUnavailableError, f"Redis {shown} unavailable: {refused}"),
        (JOBS_ERRORS, wrong_type, BackendError, f"Redis {shown}: {wrong_type}"),
        (RATELIMIT_ERRORS, refused, BackendUnavailableError, f"rate limit Redis unavailable: {refused!r}"),
        (
            RATELIMIT_ERRORS,
            wrong_type,
            BackendUnavailableError,
            f"rate limit Redis unavailable: {wrong_type!r}",
        ),
        (MONITOR_ERRORS, refused, BackendError, f"monitor store {shown}: {refused}"),
        (MONITOR_ERRORS, wrong_type, BackendError, f"monitor store {shown}: {wrong_type}"),
    ]
    for policy, exc, kind, message in cases:
        error = Translator(where, policy)(exc)
        assert (type(error), str(error)) == (kind, message)
        assert SECRET not in str(error)
    mine = ValueError("not the driver's")
    assert Translator(where, CACHE_ERRORS)(mine) is mine  # the caller's own errors pass through
    assert type(Translator(where, MONITOR_ERRORS)(mine)) is BackendError  # the store always wrapped all


async def test_backends_raise_translated_errors_when_redis_is_down() -> None:
    """A cache backend and a rate limiter on a port nothing listens on raise perfkit's outage error,
    chained to the driver's, with the password redacted."""
    raw = f"redis://:{SECRET}@127.0.0.1:{free_port()}/0"
    cache = CacheRedis(parse_url(raw), timeout=0.3)
    with pytest.raises(BackendUnavailableError, match=r"^Redis at redis://:\*\*\*@") as caught:
        await cache.get("k")
    assert isinstance(caught.value.__cause__, RedisError | OSError)
    assert SECRET not in str(caught.value)
    await cache.close()
    limiter = RedisRateLimit(parse_url(raw), timeout=0.3)
    with pytest.raises(BackendUnavailableError, match=r"^rate limit Redis unavailable"):
        await limiter.hit("k", RateLimit(10, 1.0))
    await limiter.close()


async def test_every_lua_file_loads_and_compiles_on_redis() -> None:
    """Each lua/*.lua of the five Redis users reads through importlib.resources and Redis compiles it,
    alone and as the scripts the backends run."""
    require_redis()
    names = {package: lua_names(package) for package in LUA_PACKAGES}
    assert all(names.values()), names
    assert sum(len(n) for n in names.values()) == 26
    from perfkit.cache.backends import redis_keys
    from perfkit.jobs.backends import redis_lua

    composed = [
        *(
            getattr(redis_keys, n)
            for n in ("SET_TAGGED", "DELETE", "INCR", "RELEASE_LOCK", "INVALIDATE_PAGE")
        ),
        *(getattr(redis_lua, n) for n in ("ENQUEUE", "CLAIM", "RENEW", "FINISH", "FINISH_OK", "RELEASE")),
        *(getattr(redis_lua, n) for n in ("REAP", "CANCEL", "RETRY", "PROGRESS", "CLEANUP")),
    ]
    url = parse_url(REDIS_URL)
    client = make_client(url, cache_options(url, timeout=2.0))
    try:
        for package, files in names.items():
            for name in files:
                text = lua_script(package, name)
                assert text.strip() and not any(line.startswith("--") for line in text.splitlines())
                assert len(await client.script_load(text)) == 40, (package, name)
        for text in composed:
            assert len(await client.script_load(text)) == 40
    finally:
        await close_client(client)


def test_the_wheel_ships_every_lua_file(tmp_path: Path) -> None:
    """A wheel built from this tree (pip wheel, hatchling) holds each lua/*.lua beside its module."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=50,
    )
    (wheel,) = tmp_path.glob("perfkit-*.whl")
    shipped = {n for n in zipfile.ZipFile(wheel).namelist() if n.endswith(".lua")}
    expected = {
        f"{package.replace('.', '/')}/lua/{name}.lua"
        for package in LUA_PACKAGES
        for name in lua_names(package)
    }
    assert shipped == expected


async def test_bounded_pool_stays_bounded_after_failed_connects() -> None:
    """A connect that fails frees its pool slot once: later bursts wait for a slot (then time out as
    unavailable) instead of passing the bound and failing with redis-py's "Too many connections"."""
    port = free_port()
    pool = BoundedPool.from_url(f"redis://127.0.0.1:{port}/0", max_connections=1, timeout=0.3)
    for _ in range(3):  # nothing listens yet: each connect fails
        with pytest.raises(RedisConnectionError):
            await pool.get_connection()
    server = _redis_server.start(port)
    try:
        held = await pool.get_connection()  # the one connection the pool may have
        with pytest.raises(TimeoutError):  # the bound holds: a second one waits, and times out
            await pool.get_connection()
        await pool.release(held)
        again = await pool.get_connection()  # and the slot came back
        await pool.release(again)
    finally:
        await pool.disconnect()
        server.terminate()
        server.wait(timeout=10)


async def test_the_urls_driver_options_reach_every_client() -> None:
    """`?db=`, `?client_name=` and the like reach redis-py for the cache, the rate limiter, the monitor
    store and the jobs backend alike; perfkit's own keys (`prefix`, `max_connections`) do not."""
    url = parse_url("redis://127.0.0.1:6379?db=7&client_name=perfkit-probe&prefix=p&max_connections=9")
    clients = {
        "cache": CacheRedis(url, timeout=0.4).client,
        "jobs": JobsRedis(url, max_connections=33).client,
        "ratelimit": RedisRateLimit(url, timeout=0.2).client,
        "monitor": RedisStore(url)._redis,
    }
    try:
        for name, client in clients.items():
            kw = connection_kwargs(client)
            assert (name, kw.get("db"), kw.get("client_name")) == (name, 7, "perfkit-probe")
            assert "prefix" not in kw and "max_connections" not in kw, name
        assert connection_kwargs(clients["cache"]).get("socket_timeout") == 0.4  # the cache's own still
    finally:
        for client in clients.values():
            await close_client(client)


async def test_pooled_clients_pack_with_hiredis_and_refuse_bad_arguments_as_before() -> None:
    """The jobs client's connections pack commands with hiredis: multi-word commands and pipelines go
    through, and an argument Redis cannot take is still redis-py's DataError (nothing is sent)."""
    require_redis()
    from redis.exceptions import DataError

    from perfkit.redisclient.packing import HiredisConnection

    url = parse_url(REDIS_URL)
    client = JobsRedis(url, max_connections=4).client
    key = f"pack-{uuid.uuid4().hex[:8]}"
    try:
        assert client.connection_pool.connection_class is HiredisConnection
        assert await client.execute_command("CLIENT SETNAME", "perfkit-pack-probe")
        assert await client.execute_command("CLIENT GETNAME") in ("perfkit-pack-probe", b"perfkit-pack-probe")
        async with client.pipeline(transaction=False) as pipe:
            pipe.set(key, "é", ex=60)
            pipe.get(key)
            assert await pipe.execute() == [True, "é".encode()]
        with pytest.raises(DataError):
            await client.set(key, None)  # type: ignore[arg-type]  # the point: a bad argument
        assert await client.get(key) == "é".encode()
    finally:
        await client.delete(key)
        await close_client(client)
