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
        conn.close((1000, "done"))
    kinds = [(f["type"], f["offset"]) for f in transport.frames]
    assert kinds == [("message", 1), ("resync", 2), ("message", 3), ("message", 4), ("message", 5)]
    assert transport.frames[1]["reason"] == "dropped"


async def test_writer_task_only_while_there_is_something_to_send() -> None:
    """A connection has no writer task until a message comes, and none again once it is sent."""
    transport = HeldTransport()
    transport.gate.set()
    conn = Connection(transport, HubConfig.resolve(batch_window=0), RealtimeMetrics(Collector()))
    assert conn.writer is None
    conn.push("c:1", entry(1))
    await _written(conn)
    assert conn.writer is None and [f["offset"] for f in transport.frames] == [1]


async def test_quiet_connection_sends_at_once_busy_one_once_per_window() -> None:
    """With a window, a message on a quiet connection goes at once; the ones after it within the window
    wait for its end and go together (one `batch`)."""
    transport = HeldTransport()
    transport.gate.set()
    conn = Connection(transport, HubConfig.resolve(batch_window=0.2), RealtimeMetrics(Collector()))
    started = time.monotonic()
    conn.push("c:1", entry(1))
    await _written(conn)
    first = time.monotonic() - started
    conn.push("c:1", entry(2))
    conn.push("c:1", entry(3))
    await _written(conn)
    rest = time.monotonic() - started
    assert first < 0.15 <= rest, (first, rest)
    assert [f["type"] for f in transport.frames] == ["message", "batch"]
    assert [m["offset"] for m in transport.frames[1]["messages"]] == [2, 3]  # type: ignore[attr-defined]


async def _written(conn: Connection) -> None:
    """Wait until the connection's writer has sent everything and ended."""
    writer = conn.writer
    assert writer is not None
    await writer


async def test_watchdog_closes_a_send_past_its_timeout() -> None:
    """A send that has not returned after `send_timeout` is found by the hub's watchdog (`overdue`): the
    connection closes 4409, the writer is cancelled and its waiting messages counted as dropped."""
    transport = HeldTransport()  # the gate stays shut: the client never reads
    metrics = RealtimeMetrics(Collector())
    conn = Connection(transport, HubConfig.resolve(batch_window=0, send_timeout=0.5), metrics)
    conn.push("c:1", entry(1))
    await asyncio.wait_for(transport.entered.wait(), 5)
    conn.push("c:1", entry(2))
    writer = conn.writer
    assert writer is not None
    assert not conn.overdue(time.monotonic())  # not yet: the send has only just begun
    assert conn.overdue(time.monotonic() + 1)
    await asyncio.gather(writer, return_exceptions=True)
    assert writer.cancelled() and conn.closing == (4409, "slow_consumer") and conn.writer is None
    assert metrics.dropped.value(("send_timeout",)) == 1 and metrics.closed.value(("slow_consumer",)) == 1
