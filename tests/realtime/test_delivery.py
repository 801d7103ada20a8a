"""Delivery over real uvicorn processes and real clients: order, resume, resync, SSE, both brokers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from perfkit.realtime.client import Client, Message, Resync
from perfkit.realtime.protocol import Position
from perfkit.realtime.sse_client import SseClient
from tests.conftest import pass_time

from .conftest import Server

pytestmark = pytest.mark.slow
BROKERS = [pytest.param("memory", marks=pytest.mark.memory), pytest.param("redis", marks=pytest.mark.redis)]


@pytest.fixture(params=BROKERS)
def broker_url(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return "memory://"
    return str(request.getfixturevalue("redis_url"))


async def collect(client: Client | SseClient, count: int, wait: float = 10.0) -> list[Any]:
    """The next `count` events."""
    return [await client.next(wait) for _ in range(count)]


async def subscribed(client: Client | SseClient, *channels: str) -> None:
    """Until the client holds a position for every channel (its `subscribed` frames arrived)."""
    async with asyncio.timeout(10):
        while not all(c in client.positions for c in channels):
            await asyncio.sleep(0.005)


async def test_messages_arrive_in_order_with_offsets(broker_url: str, servers: Callable[..., Server]) -> None:
    """200 messages published on one channel reach a subscriber in order, offsets 1..200, no duplicate."""
    server = servers(broker_url, batch_window=0)
    async with Client(f"{server.ws}?token=alice", channels=["room:1"]) as client:
        await subscribed(client, "room:1")
        await server.publish("room:1", *range(200), "end")  # a duplicate would come before "end"
        events = await collect(client, 201)
        extra = client.drain()
    assert [e.data for e in events] == [*range(200), "end"]
    assert [e.offset for e in events] == list(range(1, 202))
    assert len({e.epoch for e in events}) == 1 and extra == []


async def test_resume_gets_exactly_the_missed_messages(
    broker_url: str, servers: Callable[..., Server]
) -> None:
    """A client that reconnects with its last (epoch, offset) gets every message it missed, in order,
    and none it already had."""
    server = servers(broker_url, batch_window=0)
    async with Client(f"{server.ws}?token=alice", channels=["room:2"]) as first:
        await subscribed(first, "room:2")
        await server.publish("room:2", *range(10))
        seen = await collect(first, 10)
        last = first.positions["room:2"]
    await server.publish("room:2", *range(10, 25))  # while nobody listens
    second = Client(f"{server.ws}?token=alice", channels=["room:2"])
    second.positions["room:2"] = last
    async with second:
        missed = await collect(second, 15)
        frame = next(f for f in second.frames if f["type"] == "subscribed")
    assert [e.data for e in seen + missed] == list(range(25))
    assert [e.offset for e in missed] == list(range(11, 26))
    assert (frame["offset"], frame["replayed"]) == (10, 15)


async def test_resume_outside_the_history_gets_resync(
    broker_url: str, servers: Callable[..., Server]
) -> None:
    """With a history of 5, a client 20 messages behind gets `resync` (reason history) at the current
    offset, then the live stream."""
    server = servers(broker_url, batch_window=0, history_size=5)
    epoch = (await server.publish("room:3", *range(21)))["epoch"]
    client = Client(f"{server.ws}?token=alice", channels=["room:3"])
    client.positions["room:3"] = Position(epoch, 1)
    async with client:
        event = await client.next(10)
        await server.publish("room:3", "live")
        live = await client.next(10)
    assert event == Resync("room:3", epoch, 21, "history")
    assert live == Message("room:3", epoch, 22, "live")


async def test_resume_with_another_epoch_gets_resync(broker_url: str, servers: Callable[..., Server]) -> None:
    """A position from another epoch (the history was lost) gets `resync` (reason epoch), never replay."""
    server = servers(broker_url, batch_window=0)
    epoch = (await server.publish("room:4", 1, 2, 3))["epoch"]
    client = Client(f"{server.ws}?token=alice", channels=["room:4"])
    client.positions["room:4"] = Position("00ff00ff00ff00ff", 1)
    async with client:
        event = await client.next(10)
    assert event == Resync("room:4", epoch, 3, "epoch")


async def test_resume_in_the_history_but_too_old_gets_resync(
    redis_url: str, servers: Callable[..., Server]
) -> None:
    """Messages older than history_ttl leave the history: resuming behind them is a resync."""
    server = servers(redis_url, batch_window=0, history_ttl=0.3)
    epoch = (await server.publish("room:5", 1, 2))["epoch"]
    await pass_time(0.5)  # the clock is what expires them
    client = Client(f"{server.ws}?token=alice", channels=["room:5"])
    client.positions["room:5"] = Position(epoch, 1)
    async with client:
        event = await client.next(10)
    assert isinstance(event, Resync) and event.reason == "history"


async def test_sse_delivers_and_resumes_from_last_event_id(
    broker_url: str, servers: Callable[..., Server]
) -> None:
    """Over SSE a client gets the messages of its channels, and reconnecting with `Last-Event-ID` (the
    position of its last event) gets exactly the ones it missed, on every channel."""
    server = servers(broker_url, batch_window=0)
    url = f"{server.http}/events?token=alice"
    async with SseClient(url, channels=["a:1", "b:1"]) as first:
        await subscribed(first, "a:1", "b:1")
        await server.publish("a:1", "a1", "a2")
        await server.publish("b:1", "b1")
        seen = await collect(first, 3)
        position = first.last_event_id
    await server.publish("a:1", "a3")
    await server.publish("b:1", "b2", "b3")
    second = SseClient(url, channels=["a:1", "b:1"])
    second.last_event_id = position
    async with second:
        missed = await collect(second, 3)
    assert [e.data for e in seen] == ["a1", "a2", "b1"]
    assert sorted(e.data for e in missed) == ["a3", "b2", "b3"]
    assert [e.data for e in missed if e.channel == "b:1"] == ["b2", "b3"]


async def test_sse_heartbeat_comments(servers: Callable[..., Server]) -> None:
    """An SSE stream carries `: ping` comment lines every heartbeat."""
    server = servers("memory://", heartbeat=0.1)
    async with SseClient(f"{server.http}/events?token=alice", channels=["a:2"]) as client:
        async with asyncio.timeout(5):
            while client.comments < 2:
                await asyncio.sleep(0.02)
    assert client.comments >= 2


async def test_fanout_across_two_processes(redis_url: str, process_servers: Callable[..., Server]) -> None:
    """A message published in one process reaches subscribers connected to another, through Redis."""
    one, two = process_servers(redis_url, batch_window=0), process_servers(redis_url, batch_window=0)
    async with Client(f"{two.ws}?token=alice", channels=["org:9"]) as client:
        await subscribed(client, "org:9")
        await one.publish("org:9", {"n": 1}, {"n": 2})
        events = await collect(client, 2)
    assert [e.data for e in events] == [{"n": 1}, {"n": 2}]


async def test_resume_query_parameter(servers: Callable[..., Server]) -> None:
    """`?resume=<position>` resumes as `Last-Event-ID` does (SSE) and as subscribe offsets do (WebSocket
    `?channel=&resume=`), for a client that builds its own connection after a page load."""
    import json

    from websockets.asyncio.client import connect

    from perfkit.realtime.protocol import encode_position

    server = servers("memory://", batch_window=0)
    epoch = (await server.publish("q:1", 1, 2, 3))["epoch"]
    resume = encode_position({"q:1": Position(epoch, 1)})
    async with SseClient(f"{server.http}/events?token=alice&resume={resume}", channels=["q:1"]) as sse:
        over_sse = await collect(sse, 2)
    async with connect(f"{server.ws}?token=alice&channel=q:1&resume={resume}") as ws:
        frames = []
        async with asyncio.timeout(5):
            while len([f for f in frames if f["type"] == "message"]) < 2:
                frames.append(json.loads(await ws.recv()))
    assert [e.data for e in over_sse] == [2, 3]
    assert [f["data"] for f in frames if f["type"] == "message"] == [2, 3]
    assert next(f for f in frames if f["type"] == "subscribed")["replayed"] == 2
