"""One client connection: a bounded queue of messages, coalesced into frames by a writer task that
exists only while there is something to send, so a slow client only ever slows itself and an idle
connection costs no task of its own (the endpoint's handler reads; the hub pings and watches sends).

`push` is what the fan-out calls for each message: O(1), never awaits. A latest-value channel keeps one
waiting message (the newest). When the queue is full the hub's `slow_policy` applies: `drop-oldest`
drops the oldest waiting message and announces a `resync` (reason `dropped`) for its channel before
the next frame; `disconnect` closes the connection (4409).

Batching (`batch_window` > 0): a connection sends at most one frame of messages per window. A message
that finds it quiet (no frame within the last window) goes at once, with whatever joins it before the
writer runs (the same turn of the event loop); what comes after that within the window goes together
in one frame at the end of the window. A flush takes the whole queue, so while it is being written
up to `queue_size` more messages can wait (two queues' worth at most). Every send is bounded
by `send_timeout`: the writer marks when its send began and the hub's watchdog (`overdue`) closes the
connection whose send has not returned in time, without a timer per send.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
from typing import Any, NamedTuple, Protocol

from perfkit.realtime import protocol as p
from perfkit.realtime.config import HubConfig
from perfkit.realtime.metrics import RealtimeMetrics
from perfkit.realtime.protocol import Entry, Mark, Position

logger = logging.getLogger("perfkit.realtime")
_ids = itertools.count(1)
_PROCESS = os.urandom(3).hex()
MAX_CONTROL = 100  # control frames waiting (pings, answers) before a connection counts as stalled
_NONE: frozenset[str] = frozenset()
_clock = time.monotonic


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
    # slots and containers made on first use: 10,000 idle connections per process is the target
    __slots__ = (
        "channels", "closing", "config", "control", "dropped", "errors", "handler", "hold_until", "id",
        "interrupted", "last_seen", "latest", "latest_waiting", "metrics", "positions", "queue",
        "replaying", "rtt", "sending", "sent", "transport", "user", "writer",
    )  # fmt: skip

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
        self.latest: frozenset[str] | set[str] = _NONE  # subscribed latest-value channels
        self.queue: list[Item] = []
        self.latest_waiting: dict[str, Entry] = {}
        self.dropped: dict[str, Position] = {}
        self.control: list[tuple[str, str]] = []  # (text, "frame" | "comment" | "positioned")
        self.closing: tuple[int, str] | None = None
        self.last_seen = time.monotonic()
        self.rtt: float | None = None
        self.errors = 0
        self.writer: asyncio.Task[None] | None = None  # only while there is something to send
        self.handler: asyncio.Task[Any] | None = None  # the endpoint's task, while it reads the client
        self.interrupted = False  # the hub cancelled the handler (`close`)
        self.sending = 0.0  # time.monotonic() the current send began (0: none in progress)
        self.hold_until = 0.0  # loop time before which a busy connection sends no new frame

    def set_latest(self, channel: str, on: bool) -> None:
        """Mark `channel` a latest-value channel of this connection (or not)."""
        latest = set(self.latest)
        if on:
            latest.add(channel)
        else:
            latest.discard(channel)
        self.latest = latest or _NONE

    # -- what the fan-out calls
    def push(self, channel: str, entry: Entry) -> None:
        held = self.replaying.get(channel) if self.replaying else None
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
        queue = self.queue
        if len(queue) >= self.config.queue_size:
            if self.config.slow_policy == "disconnect":
                self.metrics.dropped.inc(("disconnect",), len(queue))
                self.close(p.CLOSE_SLOW)
                return
            channel, old = queue.pop(0)  # O(queue_size), only on overflow
            if old is None:
                old = self.latest_waiting.pop(channel)
            if isinstance(old, Entry) and channel not in self.latest:
                self.dropped[channel] = Position(old.epoch, old.offset)
            elif isinstance(old, Resync):
                self.dropped[channel] = old.position
            self.metrics.dropped.inc(("queue_full",))
        queue.append(item)
        if self.writer is None:
            self._wake()

    def _wake(self) -> None:
        if self.writer is None and self.closing is None:
            self.writer = asyncio.get_running_loop().create_task(self._write())

    # -- control frames
    def send_control(self, text: str, positioned: bool = False) -> None:
        """A frame sent before any waiting message; `positioned` gives it the SSE position (`subscribed`)."""
        self.control.append((text, "positioned" if positioned else "frame"))
        self._wake()

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
        self._wake()

    def pong(self, t: Any) -> None:
        if isinstance(t, int | float) and not isinstance(t, bool):
            rtt = time.monotonic() - t / 1000
            if 0 <= rtt < 3600:
                self.rtt = rtt
                self.metrics.rtt.observe((), rtt)

    def overdue(self, now: float) -> bool:
        """The hub's send watchdog (`now`: `time.monotonic()`): a send running past `send_timeout` closes the
        connection 4409, its waiting messages counted as dropped (`send_timeout`)."""
        if not self.sending or now - self.sending <= self.config.send_timeout or self.closing is not None:
            return False
        self.metrics.dropped.inc(("send_timeout",), len(self.queue))
        self.close(p.CLOSE_SLOW)
        return True

    def close(self, code_reason: tuple[int, str]) -> None:
        """Stop writing and reading; the endpoint then closes the transport with this code."""
        if self.closing is None:
            self.closing = code_reason
            self.metrics.closed.inc((code_reason[1],))
        self._stop()

    def _stop(self) -> None:
        current = asyncio.current_task()
        if self.writer is not None and self.writer is not current:
            self.writer.cancel()
            self.writer = None
        if self.handler is not None and self.handler is not current:
            self.interrupted = True
            self.handler.cancel()
        self.handler = None

    # -- the writer task, started by the first thing to send and gone once there is nothing left
    async def _write(self) -> None:
        window = self.config.batch_window
        loop = asyncio.get_running_loop()
        try:
            while self.closing is None:
                if self.control:
                    await self._send_control()
                    continue
                if not (self.queue or self.dropped):
                    return
                wait = self.hold_until - loop.time()
                if wait > 0:  # a busy connection: at most one frame per window
                    await asyncio.sleep(wait)
                    continue
                await self._flush()
                if window:
                    self.hold_until = loop.time() + window
        except OSError:  # the client went away mid-send (the server's ClientDisconnected)
            self.closing = self.closing or (0, "client")
            self._stop()
        except Exception:  # a bug: shown, and the connection ends rather than hangs
            logger.exception("realtime: the writer of connection %s failed", self.id)
            self.closing = self.closing or (1011, "internal_error")
            self._stop()
        finally:
            self.writer = None  # a writer is only replaced once it is gone (or the connection closes)

    async def _send(self, text: str, position: str | None = None) -> None:
        self.sending = _clock()
        await self.transport.send(text, position)
        self.sending = 0.0
        self.metrics.frames.inc((self.transport.kind,))

    async def _send_control(self) -> None:
        control = self.control
        while control and self.closing is None:
            text, kind = control.pop(0)
            if kind == "comment":
                self.sending = _clock()
                await self.transport.comment(text)
                self.sending = 0.0
            else:
                await self._send(text, self._position() if kind == "positioned" else None)

    def _position(self) -> str | None:
        return p.encode_position(self.sent) if self.transport.kind == "sse" else None

    async def _flush(self) -> None:
        """Send every waiting message (one frame, but for the resyncs between them)."""
        while self.queue or self.dropped:
            if self.dropped:  # dropped messages are older than every waiting one: announce them first
                dropped, self.dropped = self.dropped, {}
                for channel, position in dropped.items():
                    self.sent[channel] = position
                    await self._send(p.resync(channel, position, p.DROPPED), self._position())
                continue
            items, self.queue = self.queue, []
            frames: list[str] = []
            oldest = 0.0
            for channel, item in items:
                if item is None:
                    item = self.latest_waiting.pop(channel)
                if isinstance(item, Resync):
                    await self._send_batch(frames, oldest)
                    frames, oldest = [], 0.0
                    self.sent[channel] = item.position
                    await self._send(p.resync(channel, item.position, item.reason), self._position())
                    continue
                if not frames:
                    oldest = item.at
                frames.append(item.frame)
                self.sent[channel] = item
                if not self.config.batch_window:  # batching off: each message its own frame
                    await self._send_batch(frames, oldest)
                    frames = []
            await self._send_batch(frames, oldest)

    async def _send_batch(self, frames: list[str], oldest: float) -> None:
        """One frame of `frames` (the messages' own texts); metrics per frame, not per message: the lag
        is the frame's oldest message's."""
        if not frames:
            return
        n = len(frames)
        metrics = self.metrics
        metrics.batch.observe((), n)
        metrics.messages_out.inc((), n)
        metrics.lag.observe((), max(0.0, time.time() - oldest))
        await self._send(frames[0] if n == 1 else p.batch_frame(frames), self._position())
