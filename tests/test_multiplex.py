"""perfkit.redisclient.multiplex: one connection shared by every caller, against the real Redis and
against small hostile servers for what a healthy Redis never does (stall, lie, hang up)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from perfkit.backends import parse_url
from perfkit.errors import ConfigurationError
from perfkit.redisclient import cache_options, make_client
from perfkit.redisclient.multiplex import Multiplexed, Settings

from .conftest import REDIS_URL, require_redis

ROOT = Path(__file__).resolve().parents[1]
DB = 13  # these tests' own database


@pytest.fixture
async def client() -> AsyncIterator[Multiplexed]:
    require_redis()
    base = REDIS_URL.rsplit("/", 1)[0]
    mux = Multiplexed(Settings.from_url(f"{base}/{DB}", socket_timeout=2.0, socket_connect_timeout=2.0))
    yield mux
    await mux.aclose()


@pytest.fixture
def prefix() -> str:
    return f"mux-{uuid.uuid4().hex[:8]}:"


@pytest.fixture
async def raw() -> AsyncIterator[aioredis.Redis]:
    """A plain redis-py client on the same database, to look behind the multiplexed one's back."""
    require_redis()
    base = REDIS_URL.rsplit("/", 1)[0]
    plain = aioredis.Redis.from_url(f"{base}/{DB}")
    yield plain
    keys = [k async for k in plain.scan_iter(match="mux-*")]
    if keys:
        await plain.delete(*keys)
    await plain.aclose()


class Server:
    """A TCP server on 127.0.0.1 that reads commands and answers as the test says (or not at all)."""

    def __init__(self, answer: Callable[[bytes], bytes | None]) -> None:
        self.answer = answer
        self.connections = 0
        self.received: list[bytes] = []
        self.writers: list[asyncio.StreamWriter] = []
        self.release = asyncio.Event()
        self.got = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        while data := await reader.read(65536):
            self.received.append(data)
            self.got.set()
            reply = self.answer(data)
            if reply is not None:
                await self.release.wait()
                writer.write(reply)
        writer.close()

    async def __aenter__(self) -> Multiplexed:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        self.client = Multiplexed(Settings(port=port, socket_timeout=0.3, socket_connect_timeout=1.0))
        return self.client

    async def __aexit__(self, *exc: object) -> None:
        await self.client.aclose()
        for writer in self.writers:
            writer.close()
        self.server.close()


async def test_concurrent_callers_each_get_their_own_reply(client: Multiplexed, prefix: str) -> None:
    """500 concurrent SETs and GETs of distinct keys on one connection: every caller reads its own value."""
    keys = [f"{prefix}{i}" for i in range(500)]
    await asyncio.gather(*(client.set(k, f"v{i}".encode(), px=60_000) for i, k in enumerate(keys)))
    values = await asyncio.gather(*(client.get(k) for k in keys))
    assert values == [f"v{i}".encode() for i in range(500)]
    assert await client.mget(keys[:3]) == [b"v0", b"v1", b"v2"]


async def test_a_cancelled_caller_does_not_shift_the_replies() -> None:
    """A caller cancelled while its reply is in flight: the reply is read and dropped, and the caller
    behind it still gets its own (not the cancelled one's)."""
    answers = iter([b"$1\r\nA\r\n", b"$1\r\nB\r\n"])
    server = Server(lambda data: b"".join(next(answers) for _ in range(data.count(b"GET"))))
    async with server as mux:
        first = asyncio.ensure_future(mux.get("a"))
        second = asyncio.ensure_future(mux.get("b"))
        await server.got.wait()  # both commands written (one write per loop turn)
        assert server.received == [b"*2\r\n$3\r\nGET\r\n$1\r\na\r\n*2\r\n$3\r\nGET\r\n$1\r\nb\r\n"]
        first.cancel()
        server.release.set()
        assert await second == b"B"
        assert first.cancelled()


async def test_a_stuck_connection_fails_every_waiting_command_once_then_reconnects() -> None:
    """A server that never answers: the waiting commands fail with TimeoutError after `socket_timeout`
    (one timer for all of them), the connection is closed, and the next command opens a new one."""
    server = Server(lambda data: None)  # reads, never answers
    async with server as mux:
        start = time.monotonic()
        results = await asyncio.gather(*(mux.get(f"k{i}") for i in range(20)), return_exceptions=True)
        assert all(isinstance(r, RedisTimeoutError) for r in results)
        assert 0.25 <= time.monotonic() - start < 1.5
        with pytest.raises(RedisTimeoutError):
            await mux.get("again")
        assert server.connections == 2


async def test_a_malformed_or_unasked_reply_closes_the_connection() -> None:
    """A reply hiredis cannot parse, or one nobody asked for, fails what waits and drops the connection."""
    server = Server(lambda data: b"?garbage\r\n")
    server.release.set()
    async with server as mux:
        with pytest.raises(RedisConnectionError, match="malformed"):
            await mux.get("k")
    chatty = Server(lambda data: b"+OK\r\n+EXTRA\r\n")
    chatty.release.set()
    async with chatty as mux:
        assert await mux.ping() == b"OK"  # the first reply answers PING; the second nobody asked for
        assert await mux.ping() == b"OK"  # so that connection was dropped: this is a new one
        assert chatty.connections == 2


async def test_a_killed_connection_fails_in_flight_and_the_next_command_reconnects(
    client: Multiplexed, raw: aioredis.Redis, prefix: str
) -> None:
    """CLIENT KILL of the shared connection (what a Redis restart or a proxy does): the next command
    succeeds on a new connection, with the database and name of the URL."""
    await client.set(f"{prefix}k", b"1")
    my_id = await client.execute_command("CLIENT", "ID")
    await raw.execute_command("CLIENT", "KILL", "ID", my_id)
    # Redis closed the socket before answering the kill; whether this side has read that EOF yet or
    # not, at most the first command fails (with ConnectionError) and the next one reconnects
    try:
        first = await client.get(f"{prefix}k")
    except RedisConnectionError:
        first = await client.get(f"{prefix}k")
    assert first == b"1"
    assert await client.execute_command("CLIENT", "ID") != my_id


async def test_scripts_survive_a_script_flush_alone_and_in_pipelines(
    client: Multiplexed, prefix: str
) -> None:
    """EVALSHA loads the script on NOSCRIPT, alone and in a pipeline (after SCRIPT FLUSH too)."""
    echo = client.register_script("return ARGV[1]")
    assert await echo(keys=[f"{prefix}k"], args=["x"]) == b"x"
    await client.execute_command("SCRIPT", "FLUSH")
    assert await echo(keys=[f"{prefix}k"], args=["y"]) == b"y"
    await client.execute_command("SCRIPT", "FLUSH")
    async with client.pipeline() as pipe:
        await echo(keys=[f"{prefix}k"], args=["z"], client=pipe)
        pipe.incr(f"{prefix}n")
        assert await pipe.execute() == [b"z", 1]


async def test_a_pipeline_reads_every_reply_then_raises_the_first_error(
    client: Multiplexed, prefix: str
) -> None:
    """An error reply in a pipeline is raised after the other commands ran (redis-py's raise_on_error)."""
    await client.set(f"{prefix}s", b"text")
    async with client.pipeline() as pipe:
        pipe.incr(f"{prefix}s")  # not an integer
        pipe.incr(f"{prefix}n")
        with pytest.raises(ResponseError, match="not an integer"):
            await pipe.execute()
    assert await client.get(f"{prefix}n") == b"1"
    with pytest.raises(NoScriptError):
        await client.execute_command("EVALSHA", "0" * 40, 0)


async def test_the_urls_database_and_name_apply_and_pool_options_are_refused(raw: aioredis.Redis) -> None:
    """`?db=` and `?client_name=` reach the connection; an option only a pool has is refused by name."""
    require_redis()
    base = REDIS_URL.rsplit("/", 1)[0]
    mux = Multiplexed(Settings.from_url(f"{base}?db={DB}&client_name=perfkit-mux-probe"))
    try:
        key = f"mux-{uuid.uuid4().hex[:8]}"
        await mux.set(key, b"here")
        assert await raw.get(key) == b"here"
        assert await mux.execute_command("CLIENT", "GETNAME") == b"perfkit-mux-probe"
    finally:
        await mux.aclose()
    with pytest.raises(ConfigurationError, match="health_check_interval"):
        Settings.from_url(f"{base}/0?health_check_interval=5")
    url = parse_url(f"{base}/0?max_connections=9&prefix=p")  # perfkit's own options are not redis-py's
    assert isinstance(make_client(url, cache_options(url, timeout=0.2, multiplexed=True)), Multiplexed)


async def test_a_redis_that_is_down_fails_fast_with_a_connection_error() -> None:
    """Nothing listens: the command fails with redis-py's ConnectionError (an outage to the cache)."""
    from .conftest import free_port

    mux = Multiplexed(Settings(port=free_port(), socket_timeout=0.2, socket_connect_timeout=0.2))
    with pytest.raises(RedisConnectionError, match="Error connecting"):
        await mux.get("k")


def test_a_forked_worker_on_its_own_loop_opens_its_own_connection() -> None:
    """Used before a fork (a preloading master), then in the child's own event loop: the child opens a
    connection of its own, and the parent's next loop does too; each reads its own replies."""
    require_redis()
    code = f"""
import asyncio, os
from perfkit.redisclient.multiplex import Multiplexed, Settings
mux = Multiplexed(Settings.from_url({REDIS_URL.rsplit("/", 1)[0] + f"/{DB}"!r}))
async def first():
    await mux.set("mux-fork", b"parent")
    return await mux.execute_command("CLIENT", "ID")
async def child(parent_id):
    return await mux.execute_command("CLIENT", "ID") != parent_id and await mux.get("mux-fork") == b"parent"
parent_id = asyncio.run(first())
pid = os.fork()
if pid == 0:
    os._exit(0 if asyncio.run(child(parent_id)) else 3)
_, status = os.waitpid(pid, 0)
assert os.waitstatus_to_exitcode(status) == 0, status
assert asyncio.run(mux.get("mux-fork")) == b"parent"
asyncio.run(mux.execute_command("DEL", "mux-fork"))
print("ok")
"""
    done = subprocess.run(
        [sys.executable, "-c", code], env={"PYTHONPATH": str(ROOT / "src")}, capture_output=True, text=True,
        timeout=30,
    )  # fmt: skip
    assert done.stdout.strip() == "ok", done.stderr
