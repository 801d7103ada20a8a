"""When Redis is down or goes away, the cache degrades instead of raising, and recovers by itself."""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest

from perfkit import BackendUnavailableError, Cache
from tests import _redis_server
from tests.conftest import eventually, free_port

pytestmark = pytest.mark.redis


async def test_closed_port_degrades_to_misses(caplog: pytest.LogCaptureFixture) -> None:
    """Against a closed port: misses, silent sets, the loader runs, and one log line for the outage."""
    caplog.set_level(logging.WARNING, "perfkit.cache")
    async with Cache(f"redis://127.0.0.1:{free_port()}/0", timeout=0.2, namespace="down") as cache:
        start = time.monotonic()
        for _ in range(20):
            assert await cache.get("k", "default") == "default"
            await cache.set("k", 1)
        assert await cache.get_or_set("k", lambda: "from-loader") == "from-loader"
        assert await cache.exists("k") is False
        assert time.monotonic() - start < 3
        with pytest.raises(BackendUnavailableError):
            await cache.incr("n")
        assert cache.stats().tiers["l2"].errors >= 20
    outage_lines = [r for r in caplog.records if "unavailable" in r.getMessage()]
    assert len(outage_lines) == 1


async def test_tiered_cache_over_dead_redis_still_answers() -> None:
    """A tiered cache whose Redis is down serves from the loader and never raises."""
    async with Cache(
        f"redis://127.0.0.1:{free_port()}/0", l1="memory://", timeout=0.2, namespace="down"
    ) as cache:
        await cache.set("k", "v")
        assert await cache.get_or_set("k2", lambda: "loaded") == "loaded"


async def test_on_error_raise() -> None:
    """on_error='raise' surfaces the outage as BackendUnavailableError."""
    async with Cache(f"redis://127.0.0.1:{free_port()}/0", timeout=0.2, on_error="raise") as cache:
        with pytest.raises(BackendUnavailableError, match=r"unavailable|down"):
            await cache.get("k")


async def test_on_error_raise_holds_during_the_backoff_too() -> None:
    """After a failure, reads and writes in the L2's backoff raise too (a skipped set is not a success)."""
    async with Cache(f"redis://127.0.0.1:{free_port()}/0", timeout=0.2, on_error="raise") as cache:
        with pytest.raises(BackendUnavailableError):
            await cache.get("k")
        with pytest.raises(BackendUnavailableError, match="down"):
            await cache.set("k", 1)
        with pytest.raises(BackendUnavailableError, match="down"):
            await cache.get("k")


@pytest.fixture
def redis_server() -> Iterator[tuple[int, list[subprocess.Popen[bytes]]]]:
    """A private redis-server on a spare port that the test may stop and restart."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("REDIS-SERVER BINARY NOT INSTALLED: cannot run the restart test")
    port = free_port()
    procs: list[subprocess.Popen[bytes]] = []
    yield port, procs
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(5)


def start_redis(port: int, procs: list[subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    proc = _redis_server.start(port)
    procs.append(proc)
    return proc


@pytest.mark.slow
async def test_redis_restart_degrades_then_recovers(
    redis_server: tuple[int, list[subprocess.Popen[bytes]]], caplog: pytest.LogCaptureFixture
) -> None:
    """A real redis-server stopped mid-use: calls degrade; restarted: the cache works again by itself."""
    caplog.set_level(logging.WARNING, "perfkit.cache")
    port, procs = redis_server
    proc = start_redis(port, procs)
    async with Cache(f"redis://127.0.0.1:{port}/0", l1="memory://", timeout=0.2, namespace="rs") as cache:
        await cache.set("k", "before")
        assert await cache.get("k") == "before"
        proc.terminate()
        proc.wait(5)
        for _ in range(10):
            assert await cache.get("k", "degraded") == "degraded"  # L1 is bypassed while coherence is lost
            await cache.set("k2", 1)
        start_redis(port, procs)

        async def works() -> bool:
            await cache.set("k3", "after")
            return bool(await cache.get("k3") == "after" and cache.stats().tiers["l2"].errors > 0)

        await eventually(works, timeout=10, what="recovery after restart")
    messages = [r.getMessage() for r in caplog.records]
    assert sum("unavailable" in m for m in messages) == 1
    assert any("is back" in m for m in messages)


async def test_slow_redis_is_bounded_by_the_timeout() -> None:
    """A Redis that accepts connections but never answers costs one timeout, then calls skip it."""
    hang = asyncio.Event()

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await hang.wait()  # read nothing, answer nothing
        writer.close()

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with Cache(f"redis://127.0.0.1:{port}/0", timeout=0.2, namespace="slow") as cache:
            start = time.monotonic()
            assert await cache.get("k", "default") == "default"
            first = time.monotonic() - start
            start = time.monotonic()
            for _ in range(50):
                assert await cache.get("k", "default") == "default"
            rest = time.monotonic() - start
        assert 0.15 < first < 1.0
        assert rest < 1.0  # skipped while known down, not 50 more timeouts
    finally:
        hang.set()
        server.close()
        await server.wait_closed()


async def test_value_tagged_during_an_invalidation_stays_invalidatable(namespace: str) -> None:
    """A value tagged right after invalidate_tags read the tag's page keeps its tag entry
    (regression: the tag index was deleted at the end, so the next invalidation missed the value)."""
    from tests.conftest import REDIS_URL, require_redis

    require_redis()
    async with Cache(REDIS_URL, namespace=namespace) as cache:
        backend = cache.tiers.l2
        read_pages = backend._read_pages  # type: ignore[union-attr]
        injected = False

        async def read_then_a_writer_tags_a_value(tag_keys: list[str]) -> dict[str, list[bytes]]:
            nonlocal injected
            pages = await read_pages(tag_keys)
            if pages and not injected:
                injected = True
                await cache.set("late", "v", tags=["t"])  # another writer, after the page was read
            return pages

        await cache.set("early", 1, tags=["t"])
        backend._read_pages = read_then_a_writer_tags_a_value  # type: ignore[union-attr]
        await cache.invalidate_tags(["t"])
        assert injected
        assert await cache.get("early") is None
        assert await cache.get("late") == "v"
        assert await cache.invalidate_tags(["t"]) == 1
        assert await cache.get("late") is None
        await cache.clear()
