"""One client connection: a bounded queue of messages, coalesced into frames and written by its own
task, every send bounded by `send_timeout`, so a slow client only ever slows itself.

`push` is what the fan-out calls for each message: O(1), never awaits. A latest-value channel keeps one
waiting message (the newest). When the queue is full the hub's `slow_policy` applies: `drop-oldest`
drops the oldest waiting message and announces a `resync` (reason `dropped`) for its channel before
the next frame; `disconnect` closes the connection (4409). The writer sends at most one frame per
`batch_window`: a message that finds the connection idle goes at once, the ones that follow within
the window go together.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections import deque
from typing import Any, NamedTuple, Protocol

from perfkit.realtime import protocol as p
from perfkit.realtime.config import HubConfig
from perfkit.realtime.metrics import RealtimeMetrics
from perfkit.realtime.protocol import Entry, Mark, Position

_ids = itertools.count(1)
_PROCESS = os.urandom(3).hex()
MAX_CONTROL = 100  # control frames waiting (pings, answers) before a connection counts as stalled


class Transport(Protocol):
    kind: str  # "ws" or "sse"

    async def send(self, text: str, position: str | None) -> None:
        """One frame; `position` is the SSE event id (None for control frames and over WebSocket)."""

    async def comment(self, text: str) -> None:
        """A heartbeat the client need not answer (SSE comment lines)."""

    async def close(self, code: int, reason: str) -> None: ...


class Resync(NamedTuple):
    position: Position
    reason: str


Item = tuple[str, "Entry | Resync | None"]  # (channel, message | resync | latest-value placeholder)


class Connection:
    def __init__(
        self, transport: Transport, config: HubConfig, metrics: RealtimeMetrics, user: Any = None
    ) -> None:
        self.id = f"{_PROCESS}-{next(_ids)}"
        self.transport, self.config, self.metrics, self.user = transport, config, metrics, user
        self.channels: set[str] = set()
        # the last message accepted (dedup) and written (the SSE position) per channel: the message's own
        # Entry where there is one (its epoch and offset; a new Position per delivery was 15 % of the fan-out)
        self.positions: dict[str, Mark] = {}
        self.sent: dict[str, Mark] = {}
        self.replaying: dict[str, list[Entry]] = {}  # live messages held while a subscribe reads history
        self.latest: set[str] = set()  # subscribed latest-value channels
        self.queue: deque[Item] = deque()
        self.latest_waiting: dict[str, Entry] = {}
        self.dropped: dict[str, Position] = {}
        self.control: deque[tuple[str, str]] = deque()  # (text, "frame" | "comment" | "positioned")
        self.wake = asyncio.Event()
        self.closing: tuple[int, str] | None = None
        self.last_seen = time.monotonic()
        self.rtt: float | None = None
        self.errors = 0

    # -- what the fan-out calls
    def push(self, channel: str, entry: Entry) -> None:
        held = self.replaying.get(channel)
        if held is not None:
            held.append(entry)
            return
        seen = self.positions.get(channel)
        if seen is not None and seen.epoch == entry.epoch and entry.offset <= seen.offset:
            return
        self.positions[channel] = entry
        if channel in self.latest:
            if channel in self.latest_waiting:
                self.latest_waiting[channel] = entry
                self.metrics.dropped.inc(("superseded",))
                return
            self.latest_waiting[channel] = entry
            self._append((channel, None))
        else:
            self._append((channel, entry))

    def resync(self, channel: str, position: Position, reason: str) -> None:
        if channel in self.replaying:
            return  # the subscribe in progress reads the position itself
        self.positions[channel] = position
        self._append((channel, Resync(position, reason)))

    def _append(self, item: Item) -> None:
        if self.closing is not None:
            return
        if len(self.queue) >= self.config.queue_size:
            if self.config.slow_policy == "disconnect":
                self.metrics.dropped.inc(("disconnect",), len(self.queue))
                self.close(p.CLOSE_SLOW)
                return
            channel, old = self.queue.popleft()
            if old is None:
                old = self.latest_waiting.pop(channel)
            if isinstance(old, Entry) and channel not in self.latest:
                self.dropped[channel] = Position(old.epoch, old.offset)
            elif isinstance(old, Resync):
                self.dropped[channel] = old.position
            self.metrics.dropped.inc(("queue_full",))
        self.queue.append(item)
        self.wake.set()

    # -- control frames
    def send_control(self, text: str, positioned: bool = False) -> None:
        """A frame sent before any waiting message; `positioned` gives it the SSE position (`subscribed`)."""
        self.control.append((text, "positioned" if positioned else "frame"))
        self.wake.set()

    def ping(self) -> None:
        if len(self.control) > MAX_CONTROL:  # not even control frames get out: a stalled client
            self.close(p.CLOSE_SLOW)
            return
        t = int(time.monotonic() * 1000)
        if self.transport.kind == "sse":
            self.control.append((f"ping {t}", "comment"))
        else:
            rtt = None if self.rtt is None else round(self.rtt * 1000, 2)
            self.control.append((p.frame("ping", t=t, rtt=rtt), "frame"))
        self.wake.set()

    def pong(self, t: Any) -> None:
        if isinstance(t, int | float) and not isinstance(t, bool):
            rtt = time.monotonic() - t / 1000
            if 0 <= rtt < 3600:
                self.rtt = rtt
                self.metrics.rtt.observe((), rtt)

    def close(self, code_reason: tuple[int, str]) -> None:
        """Ask the writer to stop; the endpoint then closes the transport with this code."""
        if self.closing is None:
            self.closing = code_reason
            self.metrics.closed.inc((code_reason[1],))
        self.wake.set()

    # -- the writer task
    async def write_loop(self) -> None:
        window = self.config.batch_window
        last = -window
        try:
            while self.closing is None:
                await self.wake.wait()
                self.wake.clear()
                await self._send_control()
                if not (self.queue or self.dropped) or self.closing is not None:
                    continue
                wait = last + window - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                    await self._send_control()
                last = time.monotonic()
                await self._flush()
        except TimeoutError:
            self.metrics.dropped.inc(("send_timeout",), len(self.queue))
            self.close(p.CLOSE_SLOW)
        except OSError:  # the client went away mid-send (the server's ClientDisconnected)
            self.closing = self.closing or (0, "client")

    async def _send(self, text: str, position: str | None = None) -> None:
        async with asyncio.timeout(self.config.send_timeout):
            await self.transport.send(text, position)
        self.metrics.frames.inc((self.transport.kind,))

    async def _send_control(self) -> None:
        while self.control and self.closing is None:
            text, kind = self.control.popleft()
            if kind == "comment":
                async with asyncio.timeout(self.config.send_timeout):
                    await self.transport.comment(text)
            else:
                await self._send(text, self._position() if kind == "positioned" else None)

    def _position(self) -> str | None:
        return p.encode_position(self.sent) if self.transport.kind == "sse" else None

    async def _flush(self) -> None:
        frames: list[str] = []
        now = time.time()
        while self.queue or self.dropped:
            if self.dropped:  # dropped messages are older than every waiting one: announce them first
                await self._send_batch(frames)
                frames = []
                dropped, self.dropped = self.dropped, {}
                for channel, position in dropped.items():
                    self.sent[channel] = position
                    await self._send(p.resync(channel, position, p.DROPPED), self._position())
                continue
            channel, item = self.queue.popleft()
            if item is None:
                item = self.latest_waiting.pop(channel)
            if isinstance(item, Resync):
                await self._send_batch(frames)
                frames = []
                self.sent[channel] = item.position
                await self._send(p.resync(channel, item.position, item.reason), self._position())
                continue
            frames.append(item.frame)
            self.sent[channel] = item
            self.metrics.lag.observe((), max(0.0, now - item.at))
            if not self.config.batch_window:  # batching off: each message its own frame
                await self._send_batch(frames)
                frames = []
        await self._send_batch(frames)

    async def _send_batch(self, frames: list[str]) -> None:
        if not frames:
            return
        self.metrics.batch.observe((), len(frames))
        self.metrics.messages_out.inc((), len(frames))
        await self._send(frames[0] if len(frames) == 1 else p.batch_frame(frames), self._position())
