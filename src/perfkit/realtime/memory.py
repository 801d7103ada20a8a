"""The in-process broker: one process, the same semantics as Redis (offsets, epochs, bounded history)."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from perfkit.backends import BackendURL
from perfkit.realtime.broker import Deliver, History, Resumed, new_epoch, select
from perfkit.realtime.config import HubConfig
from perfkit.realtime.protocol import Entry, message_frame


@dataclass
class _Channel:
    epoch: str = field(default_factory=new_epoch)
    offset: int = 0
    entries: deque[Entry] = field(default_factory=deque)


class MemoryBroker:
    """Channels in a dict; `deliver` is called inline by `publish` (same loop, same order)."""

    kind = "memory"

    def __init__(self, url: BackendURL | None = None, *, config: HubConfig, **_: Any) -> None:
        self.config = config
        self.channels: dict[str, _Channel] = {}
        self.subscribed: set[str] = set()
        self._deliver: Deliver | None = None

    def bind(self, deliver: Deliver, resumed: Resumed) -> None:
        self._deliver = deliver

    def _channel(self, name: str) -> _Channel:
        state = self.channels.get(name)
        if state is None:
            state = self.channels[name] = _Channel()
        return state

    def _trim(self, state: _Channel, now: float) -> None:
        entries, ttl = state.entries, self.config.history_ttl
        while len(entries) > self.config.history_size or (entries and now - entries[0].at > ttl):
            entries.popleft()

    async def publish(self, channel: str, data_json: str) -> Entry:
        state = self._channel(channel)
        state.offset += 1
        now = time.time()
        entry = Entry(
            state.epoch, state.offset, now, message_frame(channel, state.epoch, state.offset, data_json)
        )
        state.entries.append(entry)
        self._trim(state, now)
        if channel in self.subscribed and self._deliver is not None:
            self._deliver(channel, entry)
        return entry

    async def history(self, channel: str, since: int | None) -> History:
        state = self._channel(channel)
        now = time.time()
        self._trim(state, now)
        entries, complete = select(state.entries, since, state.offset, now, self.config.history_ttl)
        return History(state.epoch, state.offset, entries, complete)

    async def subscribe(self, channel: str) -> None:
        self.subscribed.add(channel)

    async def unsubscribe(self, channel: str) -> None:
        self.subscribed.discard(channel)

    async def ping(self) -> None:
        return None

    def connected(self) -> bool:
        return True

    async def close(self) -> None:
        self.subscribed.clear()
