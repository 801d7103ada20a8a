"""The broker contract (where messages are stored and fanned out between processes), the registry that
picks one by URL scheme, and the history arithmetic both brokers share.

A broker numbers each channel's messages (offsets 1, 2, 3, ... under an epoch), keeps the bounded
history, and hands every message of a subscribed channel to the one `deliver` callback of its hub,
once per process. After it lost and regained its link (a Redis restart), it calls `resumed` so the
hub can fill the gap from the history.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import NamedTuple, Protocol

from perfkit.backends import Registry, parse_url
from perfkit.realtime.config import HubConfig, broker_url
from perfkit.realtime.protocol import Entry

Deliver = Callable[[str, Entry], None]
Resumed = Callable[[], None]


class History(NamedTuple):
    """A channel's state for a reader: its epoch and last offset, and the entries after `since`."""

    epoch: str
    offset: int  # the channel's last offset (0: nothing published under this epoch)
    entries: list[Entry]  # offset > since, oldest first, none older than the history's age
    complete: bool  # True when `entries` start right after `since` (nothing the reader missed is gone)


class Broker(Protocol):
    kind: str

    def bind(self, deliver: Deliver, resumed: Resumed) -> None:
        """Where messages of subscribed channels go; called once, before the first subscribe."""

    async def publish(self, channel: str, data_json: str) -> Entry: ...

    async def history(self, channel: str, since: int | None) -> History: ...

    async def subscribe(self, channel: str) -> None:
        """Returns once messages of `channel` published from now on will be delivered."""

    async def unsubscribe(self, channel: str) -> None: ...

    async def ping(self) -> None:
        """Raises BackendUnavailableError while the broker cannot be reached."""

    def connected(self) -> bool:
        """False while the fan-out link is down (messages are then recovered from the history)."""

    async def close(self) -> None: ...


def new_epoch() -> str:
    """A fresh epoch: 16 random hex digits."""
    return os.urandom(8).hex()


def select(
    entries: Iterable[Entry], since: int | None, last: int, now: float, ttl: float
) -> tuple[list[Entry], bool]:
    """The entries after `since` still within `ttl` of `now`, and whether they start at `since + 1`."""
    if since is None:
        return [], True
    if since >= last:
        return [], since == last
    kept = [e for e in entries if e.offset > since and now - e.at <= ttl]
    return kept, bool(kept) and kept[0].offset == since + 1


registry: Registry[Broker] = Registry("realtime broker")
registry.register("memory", "perfkit.realtime.memory:MemoryBroker")
registry.register("redis", "perfkit.realtime.redis:RedisBroker", extra="realtime")
registry.register("rediss", "perfkit.realtime.redis:RedisBroker", extra="realtime")
registry.register("unix", "perfkit.realtime.redis:RedisBroker", extra="realtime")
registry.register("redis+cluster", "perfkit.realtime.cluster:ClusterBroker", extra="realtime")
registry.register("rediss+cluster", "perfkit.realtime.cluster:ClusterBroker", extra="realtime")


def check_url(url: str) -> str:
    """The URL the broker reads (see `broker_url`); fails now, naming the problem, for a URL no broker
    serves (or whose driver is not installed)."""
    resolved = broker_url(url)
    registry.factory(parse_url(resolved, "url"), "url")
    return resolved


def create_broker(url: str, config: HubConfig) -> Broker:
    """`memory://` (one process), `redis://host:6379/0` or `redis+cluster://host:7000,host:7001`."""
    return registry.create(check_url(url), "url", config=config)
