"""Delivery over real uvicorn processes and real clients: order, resume, resync, both brokers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from perfkit.realtime.client import Client, Message, Resync
from perfkit.realtime.sse_client import SseClient

from .conftest import Server

pytestmark = pytest.mark.slow


@pytest.fixture(params=[pytest.param("memory", marks=pytest.mark.memory), pytest.param("redis", marks=pytest.mark.redis)])
def broker_url(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return "memory://"
    return str(request.getfixturevalue("redis_url"))


async def collect(client: Client | SseClient, count: int, wait: float = 10.0) -> list[Any]:
    """The next `count` events."""
    return [await client.next(wait) for _ in range(count)]


async def test_messages_arrive_in_order_with_offsets(broker_url: str, servers: Callable[..., Server]) -> None:
    """200 messages published on one channel reach a subscriber in order, offsets 1..200, no duplicate."""
    server = servers(broker_url, batch_window=0)
    async with Client(f"{server.ws}?token=alice", channels=["room:1"]) as client:
        await asyncio.wait_for(_subscribed(client, "room:1"), 10)
        await server.publish("room:1", *range(200))
        events = await collect(client, 200)
    assert [e.data for e in events] == list(range(200))
    assert [e.offset for e in events] == list(range(1, 201))
    assert len({e.epoch for e in events}) == 1


async def _subscribed(client: Client | SseClient, channel: str) -> None:
    while channel not in client.positions:
        await asyncio.sleep(0.01)
