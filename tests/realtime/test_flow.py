"""Flow control over real processes: batching, latest-value channels, slow consumers, heartbeats,
and what a connection holds in Redis (one subscription per channel per process, released)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from websockets.asyncio.client import connect

from perfkit.realtime.client import Client, ClientClosed, Message
from tests.conftest import REDIS_URL, eventually

from .conftest import OwnRedis, Server
from .test_delivery import collect, subscribed

pytestmark = pytest.mark.slow


async def frames_until(ws: Any, count: int) -> list[dict[str, Any]]:
    """Raw frames until `count` messages (inside batches too) have arrived."""
    frames: list[dict[str, Any]] = []
    seen = 0
    async with asyncio.timeout(10):
        while seen < count:
            frame = json.loads(await ws.recv())
            frames.append(frame)
            seen += {"message": 1, "batch": len(frame.get("messages", []))}.get(frame["type"], 0)
    return frames


async def test_batching_coalesces_a_burst(servers: Callable[..., Server]) -> None:
    """With a 200 ms window, 100 messages published at once arrive in at most 3 frames (the first at once,
    the rest in a `batch`), in order; with the window at 0 each message is its own frame."""
    for window, most in ((0.2, 3), (0, 100)):
        server = servers("memory://", batch_window=window)
        async with connect(f"{server.ws}?token=alice&channel=room:b") as ws:
            await frames_until(ws, 0)
            while json.loads(await ws.recv())["type"] != "subscribed":
                pass
            await server.publish("room:b", *range(100))
            frames = await frames_until(ws, 100)
        data = [m["data"] for f in frames for m in (f["messages"] if f["type"] == "batch" else [f])]
        assert data == list(range(100))
        assert len(frames) <= most and (window == 0 or any(f["type"] == "batch" for f in frames)), frames
        if window == 0:
            assert {f["type"] for f in frames} == {"message"}


async def test_latest_value_channel_drops_superseded(servers: Callable[..., Server]) -> None:
    """On a latest-value channel only the newest waiting message is sent: a burst of 50 status updates
    arrives as a few messages ending with the last one; an ordinary channel gets all 50."""
    server = servers("memory://", batch_window=0.3, latest=["status:*"])
    async with Client(f"{server.ws}?token=alice", channels=["status:1", "room:l"]) as client:
        await subscribed(client, "status:1", "room:l")
        assert any(f.get("latest") for f in client.frames if f.get("channel") == "status:1")
        await server.publish("status:1", *range(50))
        await server.publish("room:l", *range(50))
        events: list[Any] = []
        while len([e for e in events if e.channel == "room:l"]) < 50:
            events.append(await client.next(10))
    statuses = [e.data for e in events if e.channel == "status:1"]
    assert statuses[-1] == 49 and len(statuses) <= 3, statuses
    assert [e.data for e in events if e.channel == "room:l"] == list(range(50))


def stalled_client(port: int, path: str) -> socket.socket:
    """A WebSocket client that completes the handshake and then never reads (a tiny receive buffer)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    sock.settimeout(5)
    assert b" 101 " in sock.recv(1024)
    return sock


@pytest.mark.parametrize("policy", ["drop-oldest", "disconnect"])
async def test_slow_consumer_does_not_hold_up_others(policy: str, servers: Callable[..., Server]) -> None:
    """A client that stops reading is bounded (its queue never passes queue_size) and dropped or closed
    by the policy (counted), while a reading client on the same channel gets all 2,000 5-KB messages,
    in order, within seconds."""
    server = servers("memory://", batch_window=0.02, queue_size=500, send_timeout=1, slow_policy=policy)
    stalled = stalled_client(server.port, "/ws?token=bob&channel=room:s")
    try:
        async with Client(f"{server.ws}?token=alice", channels=["room:s"]) as client:
            await subscribed(client, "room:s")
            await eventually(lambda: _subscribers(server, "room:s", 2), what="both subscribed")
            started = time.monotonic()
            payload = "x" * 5000  # 10 MB in all: more than the kernel buffers the stalled socket can fill
            for start in range(0, 2000, 100):
                await server.publish("room:s", *(f"{i}:{payload}" for i in range(start, start + 100)))
            events = await collect(client, 2000, wait=20)
            took = time.monotonic() - started
            stats = await server.stats()
    finally:
        stalled.close()
    assert [int(e.data.split(":")[0]) for e in events] == list(range(2000))
    assert took < 15
    assert stats["max_queue"] <= 500
    if policy == "disconnect":
        assert stats["closed"].get("slow_consumer", 0) >= 1, stats
    else:
        assert stats["dropped"].get("queue_full", 0) + stats["dropped"].get("send_timeout", 0) > 0, stats


async def _subscribers(server: Server, channel: str, count: int) -> bool:
    return bool((await server.stats())["subscribers"].get(channel) == count)


async def test_dropped_messages_are_announced_with_resync(servers: Callable[..., Server]) -> None:
    """Under drop-oldest, a client whose queue overflowed gets `resync` (reason dropped) for the
    channel, and the messages after it stay contiguous."""
    server = servers("memory://", batch_window=0.5, queue_size=10)
    async with Client(f"{server.ws}?token=alice", channels=["room:d"]) as client:
        await subscribed(client, "room:d")
        await server.publish("room:d", "first")
        await client.next(5)
        await server.publish("room:d", *range(30))  # inside the window: 30 wait, the oldest 20 are dropped
        resync = await client.next(5)
        rest = await collect(client, 10)
    assert resync.reason == "dropped" and resync.offset == 21
    assert [e.offset for e in rest] == list(range(22, 32)) and [e.data for e in rest] == list(range(20, 30))


async def test_dead_connection_closed_and_released(redis_url: str, servers: Callable[..., Server]) -> None:
    """A client that never answers pings is closed with 4408 after heartbeat_timeout, and its
    subscription is released (the process unsubscribes from Redis); a client that answers stays, with
    its round trip measured."""
    server = servers(redis_url, heartbeat=0.1, heartbeat_timeout=1.0)
    silent = Client(f"{server.ws}?token=bob", channels=["room:h"], answer_pings=False, reconnect=False)
    async with Client(f"{server.ws}?token=alice", channels=["room:k"]) as alive, silent:
        await subscribed(silent, "room:h")
        with pytest.raises(ClientClosed) as closed:
            await silent.next(10)
        assert closed.value.code == 4408
        stats = await server.stats()
        assert stats["channels"] == ["room:k"] and stats["connections"] == 1
        await eventually(lambda: _rtt_measured(server), what="a round trip measured")
        assert alive.close_code is None
    prefix = redis_url.split("prefix=")[1]
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        counts = dict(await client.pubsub_numsub(f"{prefix}{{room:h}}", f"{prefix}{{room:k}}"))
    finally:
        await client.aclose()
    assert counts[f"{prefix}{{room:h}}".encode()] == 0


async def _rtt_measured(server: Server) -> bool:
    return any(r is not None for r in (await server.stats())["rtt"])


async def test_one_redis_subscription_per_channel_per_process(
    own_redis: Callable[[bool], OwnRedis], process_servers: Callable[..., Server]
) -> None:
    """30 connections on one channel over two processes hold 2 Redis subscriptions (one per process),
    and no Redis connection per client; after they leave, none is left. (A Redis of the test's own:
    CLIENT LIST counts only these processes.)"""
    redis_server = own_redis(False)
    topic = "perfkit:rt:{room:n}"
    one, two = (
        process_servers(redis_server.url, batch_window=0),
        process_servers(redis_server.url, batch_window=0),
    )
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        before = len(await client.client_list())
        clients = [Client(f"{s.ws}?token=u{i}", channels=["room:n"]) for i, s in enumerate([one, two] * 15)]
        try:
            await asyncio.gather(*(c.start() for c in clients))
            await asyncio.gather(*(subscribed(c, "room:n") for c in clients))
            numsub = dict(await client.pubsub_numsub(topic))[topic.encode()]
            during = len(await client.client_list())
            await one.publish("room:n", "hello")
            got = await asyncio.gather(*(c.next(10) for c in clients))
        finally:
            await asyncio.gather(*(c.close() for c in clients))

        async def released() -> bool:
            return bool(dict(await client.pubsub_numsub(topic))[topic.encode()] == 0)

        await eventually(released, what="subscriptions released")
    finally:
        await client.aclose()
    assert numsub == 2
    assert during - before <= 10, (before, during)  # per process: the pub/sub link and a pool of 4, not 15
    assert all(isinstance(e, Message) and e.data == "hello" for e in got)


async def test_idle_connections_cost_one_task_each(servers: Callable[..., Server]) -> None:
    """A connection with nothing left to send has no writer task: ten more subscribed connections that
    got their messages add ten tasks to the server (their handlers), not thirty."""
    server = servers("memory://", batch_window=0.05)
    async with contextlib.AsyncExitStack() as stack:
        first = await stack.enter_async_context(Client(f"{server.ws}?token=alice", channels=["idle:0"]))
        await subscribed(first, "idle:0")
        before = await server.stats()
        clients = []
        for i in range(1, 11):
            client = await stack.enter_async_context(
                Client(f"{server.ws}?token=alice", channels=[f"idle:{i}"])
            )
            await subscribed(client, f"idle:{i}")
            clients.append(client)
        for i, client in enumerate(clients, 1):
            await server.publish(f"idle:{i}", i)
            assert (await client.next(5)).data == i
        after = await server.stats()
    assert after["connections"] == before["connections"] + 10 and after["writers"] == 0, after
    assert after["tasks"] - before["tasks"] <= 12, (before["tasks"], after["tasks"])
