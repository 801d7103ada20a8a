"""The Python clients retry a subscribe the server refused as `unavailable` (its Redis is down), with
backoff and jitter, bounded, resuming from the channel's last offset: a real uvicorn process restarted
while its Redis (persistent, the test's own) is down, then Redis comes back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from perfkit.realtime import Hub
from perfkit.realtime.client import Client, Message, RequestError
from perfkit.realtime.sse_client import SseClient
from tests.conftest import eventually

from .conftest import OwnRedis, ProcessServer, start_server
from .test_delivery import collect, subscribed
from .test_resilience import publish_when_up

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def _refusals(client: Client | SseClient) -> int:
    return sum(f.get("type") == "error" and f.get("code") == "unavailable" for f in client.frames)


async def test_refused_subscribe_is_retried_from_the_last_offset(
    own_redis: Callable[[bool], OwnRedis], process_servers: Callable[..., ProcessServer]
) -> None:
    """The server restarts while Redis is down: the resubscribes of a WebSocket and an SSE client are
    refused `unavailable`, each tries again with backoff, and once Redis is back each gets what was
    published meanwhile (replayed from its last offset), in order, once, with no resync."""
    redis_server = own_redis(True)
    server = process_servers(redis_server.url, batch_window=0)
    publisher = Hub(redis_server.url)
    options: dict[str, Any] = {"channels": ["room:u"], "backoff": (0.1, 1.0), "retries": 40}
    ws = Client(f"{server.ws}?token=alice", **options)
    sse = SseClient(f"{server.http}/events?token=alice", **options)
    try:
        async with ws, sse:
            await subscribed(ws, "room:u")
            await subscribed(sse, "room:u")
            await publisher.publish("room:u", 1)
            first = {c: await collect(c, 1) for c in (ws, sse)}
            redis_server.stop()
            server.kill()
            again = start_server(redis_server.url, port=server.port, batch_window=0)
            try:
                for client in (ws, sse):
                    await eventually(
                        lambda c=client: _seen_refusal(c), timeout=20, what="a refusal", max_interval=0.05
                    )
                redis_server.start()
                await publish_when_up(publisher, "room:u", [2, 3])
                rest = {c: await collect(c, 2, wait=30) for c in (ws, sse)}
            finally:
                again.stop()
    finally:
        await publisher.close()
    for client in (ws, sse):
        events = first[client] + rest[client]
        assert all(isinstance(e, Message) for e in events), events
        assert [e.data for e in events] == [1, 2, 3] and [e.offset for e in events] == [1, 2, 3]
        assert len({e.epoch for e in events}) == 1


async def _seen_refusal(client: Client | SseClient) -> bool:
    return _refusals(client) >= 1


async def test_retries_are_bounded(
    own_redis: Callable[[bool], OwnRedis], process_servers: Callable[..., ProcessServer]
) -> None:
    """With Redis down for good, a channel is retried `retries` times, then given up (`refused`); an
    explicit `subscribe()` raises the `unavailable` RequestError after as many retries."""
    redis_server = own_redis(False)
    server = process_servers(redis_server.url, batch_window=0)
    redis_server.stop()
    async with Client(
        f"{server.ws}?token=alice", channels=["room:b"], backoff=(0.01, 0.05), retries=2
    ) as client:
        await eventually(lambda: _given_up(client), timeout=20, what="the channel given up")
        assert _refusals(client) == 3 and "room:b" not in client.wanted
        with pytest.raises(RequestError) as refused:
            await client.subscribe("room:c")
        assert refused.value.code == "unavailable" and "room:c" not in client.wanted


async def _given_up(client: Client) -> bool:
    return "room:b" in client.refused
