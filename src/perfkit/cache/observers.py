"""Who is told about one cache's tier operations: the built-in statistics and the observers added.

`Observers(namespace, stats, observers=())` is shared by a cache and its siblings (one per event loop):

- `observe(namespace, tier, op, outcome, seconds)`: what the tier engines call for every operation. While
  the `StatsCounter` is the only observer it is the counter itself, and `counts` is its table, which the
  hot path (an L1 hit) bumps inline; with more observers it fans out to each and `counts` is None.
- `add(observer)`: report to one more, in every engine that `join`ed the group (each is told to
  `rewire()`, re-reading `observe` and `counts`).
- `evicted(count)`: report L1 evictions (the L1's `on_evict` hook).
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from typing import Any, Protocol

from perfkit.cache.stats import OK, CacheObserver, StatsCounter

__all__ = ["Observers"]


class Rewired(Protocol):
    def rewire(self) -> None: ...


class Observers:
    """The observers of one cache and its siblings; `observe` and `counts` as described above."""

    def __init__(self, namespace: str, stats: StatsCounter, observers: Iterable[CacheObserver] = ()) -> None:
        self.namespace = namespace
        self.stats = stats
        self.all: list[CacheObserver] = [stats, *observers]
        self.observe: CacheObserver = stats
        self.counts: Any = stats.counts
        self._engines: weakref.WeakSet[Rewired] = weakref.WeakSet()
        self._dispatch()

    def join(self, engine: Rewired) -> None:
        """Tell `engine` to `rewire()` whenever an observer is added."""
        self._engines.add(engine)

    def add(self, observer: CacheObserver) -> None:
        """Also report every tier operation to `observer`, in every engine of the group."""
        self.all.append(observer)
        self._dispatch()
        for engine in self._engines:
            engine.rewire()

    def evicted(self, count: int) -> None:
        """Report `count` L1 evictions."""
        for _ in range(count):
            self.observe(self.namespace, "l1", "evict", OK, 0.0)

    def _dispatch(self) -> None:
        # the built-in counter alone: call it directly and bump L1 hits inline (the hot path)
        alone = len(self.all) == 1
        self.observe = self.stats if alone else self._fanout
        self.counts = self.stats.counts if alone else None

    def _fanout(self, namespace: str, tier: str, op: str, outcome: str, seconds: float) -> None:
        for observer in self.all:
            observer(namespace, tier, op, outcome, seconds)
