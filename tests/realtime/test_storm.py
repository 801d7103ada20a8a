"""A connection storm against one real uvicorn process on a Redis of the test's own: hundreds of
WebSockets opened at once, each subscribing on connect, to one channel and to a channel each; every
one is subscribed, none refused, within a time bound, and the process reads the history only where it
does not know the position already (INFO commandstats of that Redis counts what reached it)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis
from websockets.asyncio.client import ClientConnection, connect

from .conftest import OwnRedis, ProcessServer

pytestmark = [pytest.mark.redis, pytest.mark.slow]

SAME, DISTINCT, RESUMING = 300, 200, 100
BOUND = 60.0  # seconds for the whole storm on a busy 2-core machine (about 5 s when it is quiet)


async def _open(url: str, request: dict[str, Any], answers: list[dict[str, Any]]) -> ClientConnection:
    ws = await connect(url, open_timeout=BOUND, ping_interval=None, close_timeout=1)
    await ws.send(json.dumps(request))
    while True:
        frame = json.loads(await ws.recv())
        if frame["type"] in ("subscribed", "error"):
            answers.append(frame)
            if frame["type"] == "subscribed" and frame.get("replayed"):
                answers.append(json.loads(await ws.recv()))  # the replayed message
            return ws


def _calls(client: redis.Redis, command: str) -> int:
    stats: dict[str, Any] = client.info("commandstats")  # type: ignore[assignment]
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


async def test_a_storm_of_subscribes_is_served_without_refusals(
    own_redis: Callable[[bool], OwnRedis], process_servers: Callable[..., ProcessServer]
) -> None:
    """600 connections at once: 300 on one channel (no offset: one history read for all of them), 200 on
    a channel each (their reads pipelined), 100 resuming one channel from an offset (each gets the one
    message it missed); all subscribed, none refused, within the bound."""
    redis_server = own_redis(False)
    # a history long enough for a storm on a loaded machine (the resumes read it after the storm began)
    server = process_servers(redis_server.url, batch_window=0, history_ttl=120)
    published = await server.publish("resume", "first", "missed")
    epoch = published["epoch"]
    raw = redis.Redis.from_url(redis_server.url)
    raw.config_resetstat()
    url = f"{server.ws}?token=u"
    requests = (
        [{"type": "subscribe", "channel": "same"}] * SAME
        + [{"type": "subscribe", "channel": f"own:{i}"} for i in range(DISTINCT)]
        + [{"type": "subscribe", "channel": "resume", "epoch": epoch, "offset": 1}] * RESUMING
    )
    answers: list[dict[str, Any]] = []
    started = time.monotonic()
    try:
        async with asyncio.timeout(BOUND):
            sockets = await asyncio.gather(*(_open(url, r, answers) for r in requests))
        took = time.monotonic() - started
        stats = await server.stats()
        reads = _calls(raw, "evalsha") + _calls(raw, "eval")
    finally:
        await asyncio.gather(*(ws.close() for ws in locals().get("sockets", [])), return_exceptions=True)
        raw.close()
    errors = [a for a in answers if a["type"] == "error"]
    assert errors == [] and took < BOUND
    assert sum(a["type"] == "subscribed" for a in answers) == len(requests)
    replayed = [a for a in answers if a["type"] == "message"]
    assert len(replayed) == RESUMING and {a["data"] for a in replayed} == {"missed"}
    assert stats["connections"] == len(requests)
    assert stats["subscribers"]["same"] == SAME and stats["subscribers"]["resume"] == RESUMING
    # one position read per channel the process joined; the resumes' reads, at most one each
    assert 1 + DISTINCT + 1 <= reads <= 1 + DISTINCT + 1 + RESUMING, reads
