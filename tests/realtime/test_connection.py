"""The connection's queue and writer on their own, over an in-memory transport (the seam both real
transports implement) whose sends can be held, to pin orderings a network makes hard to reproduce."""

from __future__ import annotations

import asyncio
import json
import time

from perfkit.metrics import Collector
from perfkit.realtime import HubConfig
from perfkit.realtime.connection import Connection
from perfkit.realtime.metrics import RealtimeMetrics
from perfkit.realtime.protocol import Entry, message_frame
from tests.conftest import eventually


class HeldTransport:
    """Records each frame; `gate` holds every send until it is set (a client not reading)."""

    kind = "ws"

    def __init__(self) -> None:
        self.frames: list[dict[str, object]] = []
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()

    async def send(self, text: str, position: str | None) -> None:
        self.entered.set()
        await self.gate.wait()
        self.frames.append(json.loads(text))

    async def comment(self, text: str) -> None:
        return None

    async def close(self, code: int, reason: str) -> None:
        return None


def entry(offset: int) -> Entry:
    return Entry("e1", offset, time.time(), message_frame("c:1", "e1", offset, json.dumps(offset)))


async def test_dropped_resync_precedes_the_messages_after_it() -> None:
    """Messages dropped while a send is in progress are announced (`resync`, reason dropped) before the
    messages that follow them, even those already waiting in the same flush (they were once sent
    first, the resync after)."""
    transport = HeldTransport()
    config = HubConfig.resolve(batch_window=0, queue_size=3)
    conn = Connection(transport, config, RealtimeMetrics(Collector()))
    writer = asyncio.create_task(conn.write_loop())
    try:
        conn.push("c:1", entry(1))
        await asyncio.wait_for(transport.entered.wait(), 5)  # the writer is sending message 1
        for offset in range(2, 6):  # 2..5: the queue holds 3, so 2 is dropped
            conn.push("c:1", entry(offset))
        transport.gate.set()

        async def all_sent() -> bool:
            return len(transport.frames) == 5

        await eventually(all_sent, what="five frames")
    finally:
        writer.cancel()
    kinds = [(f["type"], f["offset"]) for f in transport.frames]
    assert kinds == [("message", 1), ("resync", 2), ("message", 3), ("message", 4), ("message", 5)]
    assert transport.frames[1]["reason"] == "dropped"
