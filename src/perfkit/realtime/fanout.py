"""The channels of one process: one broker subscription per channel however many connections are on it
(refcounted), a gap-free stream per channel for those connections, holes filled from the history.

Every message reaches `deliver` once per process. Per channel the fan-out remembers the last offset
it passed on; a message right after it goes to every subscriber (the same `Entry`, the same frame
text), an older one is a duplicate and dropped, a newer one means messages went missing (the pub/sub
link was down): the fan-out then reads them from the history and passes them on in order, or, when the
history no longer has them or the epoch changed, tells each subscriber to `resync`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from perfkit.realtime.broker import Broker
from perfkit.realtime.protocol import EPOCH_CHANGED, OUT_OF_HISTORY, Entry, Position

logger = logging.getLogger("perfkit.realtime")
RETRY = 0.2  # seconds before a failed history read is tried again


class Subscriber(Protocol):
    def push(self, channel: str, entry: Entry) -> None: ...

    def resync(self, channel: str, position: Position, reason: str) -> None: ...


@dataclass(eq=False)
class ChannelState:
    subscribers: set[Subscriber] = field(default_factory=set)
    epoch: str = ""
    offset: int = 0
    filling: bool = True  # messages wait in `pending` until the position is known or the hole is filled
    again: bool = False  # fill once more when the current fill ends (the link dropped meanwhile)
    pending: list[Entry] = field(default_factory=list)
    ready: asyncio.Future[None] | None = None


class Fanout:
    def __init__(self, broker: Broker, *, gap: Callable[[str], None] | None = None) -> None:
        self.broker = broker
        self.channels: dict[str, ChannelState] = {}
        self.lock = asyncio.Lock()  # broker subscribe/unsubscribe of one channel never overlap
        self.tasks: set[asyncio.Task[None]] = set()
        self.on_gap = gap
        broker.bind(self.deliver, self.resumed)

    async def join(self, channel: str, subscriber: Subscriber) -> None:
        """Add `subscriber` to `channel`, subscribing the process at the broker if it is the first."""
        state = self.channels.get(channel)
        if state is None:
            state = self.channels[channel] = ChannelState()
            state.ready = asyncio.get_running_loop().create_future()
            try:
                async with self.lock:
                    await self.broker.subscribe(channel)
                history = await self.broker.history(channel, None)
            except BaseException as exc:
                del self.channels[channel]
                state.ready.set_exception(exc)
                state.ready.exception()  # retrieved: the waiters (if any) re-raise it
                await self._unsubscribe(channel)
                raise
            state.epoch, state.offset = history.epoch, history.offset
            self._release(channel, state)
            state.ready.set_result(None)
            if state.again:  # the link dropped and came back while joining: fill what it missed
                state.filling = True
                self._fill(channel, state)
        elif state.ready is not None and not state.ready.done():
            await asyncio.shield(state.ready)
        state.subscribers.add(subscriber)

    def position(self, channel: str) -> Position | None:
        """The last position passed on for `channel` (every later message goes to its subscribers),
        None while the process is not subscribed to it."""
        state = self.channels.get(channel)
        if state is None or state.ready is None or not state.ready.done() or state.ready.exception():
            return None
        return Position(state.epoch, state.offset)

    async def leave(self, channel: str, subscriber: Subscriber) -> None:
        """Remove `subscriber`; the last one out unsubscribes the process (never raises)."""
        state = self.channels.get(channel)
        if state is None or subscriber not in state.subscribers:
            return
        state.subscribers.discard(subscriber)
        if state.subscribers:
            return
        del self.channels[channel]
        await self._unsubscribe(channel)

    async def _unsubscribe(self, channel: str) -> None:
        try:
            async with self.lock:
                if channel not in self.channels:
                    await self.broker.unsubscribe(channel)
        except Exception:
            logger.warning("realtime: unsubscribing %s failed", channel, exc_info=True)

    def deliver(self, channel: str, entry: Entry) -> None:
        """The broker's callback: one message of a subscribed channel."""
        state = self.channels.get(channel)
        if state is None:
            return
        if state.filling:
            state.pending.append(entry)
            return
        self._apply(channel, state, entry)

    def _apply(self, channel: str, state: ChannelState, entry: Entry) -> None:
        if entry.epoch != state.epoch:
            self._resync(state, channel, Position(entry.epoch, entry.offset - 1), EPOCH_CHANGED)
        if entry.offset <= state.offset:
            return
        if entry.offset > state.offset + 1:
            state.filling = True
            state.pending.append(entry)
            self._fill(channel, state)
            return
        state.offset = entry.offset
        for subscriber in list(state.subscribers):
            subscriber.push(channel, entry)

    def _resync(self, state: ChannelState, channel: str, position: Position, reason: str) -> None:
        state.epoch, state.offset = position
        for subscriber in list(state.subscribers):
            subscriber.resync(channel, position, reason)

    def _release(self, channel: str, state: ChannelState) -> None:
        state.filling = False
        pending, state.pending = state.pending, []
        for entry in pending:
            if state.filling:  # a new hole: the rest waits for its fill
                state.pending.append(entry)
            else:
                self._apply(channel, state, entry)

    def resumed(self) -> None:
        """The broker's link is back: fill every channel from the history."""
        for channel, state in list(self.channels.items()):
            if state.ready is not None and not state.ready.done():
                state.again = True  # still joining: filled once its position is known
                continue
            state.filling = True
            self._fill(channel, state)

    def _fill(self, channel: str, state: ChannelState) -> None:
        if any(t.get_name() == f"fill:{channel}" and not t.done() for t in self.tasks):
            state.again = True
            return
        task = asyncio.get_running_loop().create_task(self._filling(channel, state), name=f"fill:{channel}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _filling(self, channel: str, state: ChannelState) -> None:
        while self.channels.get(channel) is state:
            state.again = False
            try:
                history = await self.broker.history(channel, state.offset)
            except Exception as exc:
                logger.warning("realtime: reading the history of %s failed (%s); retrying", channel, exc)
                await asyncio.sleep(RETRY)
                continue
            if self.on_gap is not None:
                self.on_gap(channel)
            if history.epoch != state.epoch:
                self._resync(state, channel, Position(history.epoch, history.offset), EPOCH_CHANGED)
            elif not history.complete:
                self._resync(state, channel, Position(history.epoch, history.offset), OUT_OF_HISTORY)
            else:
                for entry in history.entries:
                    if entry.offset == state.offset + 1:
                        state.offset = entry.offset
                        for subscriber in list(state.subscribers):
                            subscriber.push(channel, entry)
            if not state.again:
                self._release(channel, state)
                return

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.channels.clear()
