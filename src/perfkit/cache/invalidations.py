"""Applying dependency invalidations to caches, now or later: what every ORM integration shares.

An ORM integration (perfkit.cache.orm for SQLAlchemy, perfkit.django) finds which tags a commit
touched, as groups `(model, strategy, tags)`; `Invalidations` applies them to its caches:

    immediate   now (`apply_sync`, or `apply_async` from async code)
    delayed     coalesced for `delay` seconds after the first change, then applied once
    batch       collected and applied every `batch_interval` seconds or at `batch_size` pending tags

Delayed and batched tags are applied from a timer thread through each cache's sync facade, and at
process exit (`atexit`). `stats()` counts invalidations, keys removed and seconds, by model and
strategy; each invalidation is also reported to the caches' observers (tier `orm`). `observers`
(perfkit.cache.changes) hear which rows changed once a group is applied (`notify=False` for a pass
that runs before the database commits).
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from perfkit.cache.changes import Observers
from perfkit.errors import ConfigurationError

__all__ = ["STRATEGIES", "Group", "Invalidations", "check_strategy"]

log = logging.getLogger("perfkit.cache")
STRATEGIES = ("immediate", "delayed", "batch")
Group = tuple[str, str, set[str]]  # model, strategy, tags


def check_strategy(strategy: str) -> str:
    if strategy not in STRATEGIES:
        raise ConfigurationError("strategy", f"{strategy!r} is not one of {list(STRATEGIES)}")
    return strategy


def merge(groups: Iterable[Group]) -> dict[tuple[str, str], set[str]]:
    merged: dict[tuple[str, str], set[str]] = defaultdict(set)
    for model, strategy, tags in groups:
        merged[model, strategy].update(tags)
    return merged


class Invalidations:
    """Applies groups of dependency tags to `caches` by strategy; counts what it did."""

    def __init__(
        self,
        caches: Callable[[], Iterable[Any]],
        delay: float = 0.1,
        batch_interval: float = 1.0,
        batch_size: int = 1000,
    ) -> None:
        self.caches = caches  # a function: the set of caches may grow (perfkit.django watches lazily)
        self._scheduler = _Scheduler(self.apply_sync, delay, batch_interval, batch_size)
        self._stats: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0, 0, 0.0])
        self._ops: dict[tuple[str, str], str] = {}  # (model, strategy) -> the observers' op name
        self._lock = threading.Lock()
        self.observers = Observers()  # told of each applied group (RowsChanged), see on_change
        atexit.register(self._scheduler.close)  # delayed/batched invalidations must not die with us

    def split(self, groups: Iterable[Group]) -> list[Group]:
        """Schedule the delayed and batched groups; return the immediate ones (merged by model)."""
        now: list[Group] = []
        for (model, strategy), tags in merge(groups).items():
            if strategy == "immediate":
                now.append((model, strategy, tags))
            else:
                self._scheduler.add(strategy, model, tags)
        return now

    def schedule(self, strategy: str, model: str, tags: set[str]) -> None:
        self._scheduler.add(strategy, model, tags)

    def dispatch_sync(self, groups: Iterable[Group], notify: bool = True) -> None:
        """Apply the immediate groups now (blocking), schedule the others."""
        now = self.split(groups)
        if now:
            self.apply_sync(now, notify)

    async def apply_async(self, groups: list[Group], notify: bool = True) -> None:
        caches = list(self.caches())
        for model, strategy, tags in groups:
            start, removed = time.perf_counter(), 0
            for cache in caches:
                removed += await cache.invalidate_tags(sorted(tags))
            self._record(model, strategy, removed, time.perf_counter() - start, caches)
        if notify:
            self.observers.notify(groups)

    def apply_sync(self, groups: list[Group], notify: bool = True) -> None:
        caches = list(self.caches())
        for model, strategy, tags in groups:
            start, removed = time.perf_counter(), 0
            for cache in caches:
                removed += cache.sync.invalidate_tags(sorted(tags))
            self._record(model, strategy, removed, time.perf_counter() - start, caches)
        if notify:
            self.observers.notify(groups)

    def _record(self, model: str, strategy: str, removed: int, seconds: float, caches: list[Any]) -> None:
        with self._lock:
            entry = self._stats[model, strategy]
            entry[0] += 1
            entry[1] += removed
            entry[2] += seconds
        op = self._ops.get((model, strategy))
        if op is None:
            op = self._ops[model, strategy] = f"invalidate:{model}:{strategy}"
        for cache in caches:
            cache.tiers.observe(cache.namespace, "orm", op, "ok", seconds)

    def stats(self) -> dict[str, dict[str, dict[str, float]]]:
        """{model: {strategy: {invalidations, keys_removed, seconds}}}."""
        out: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
        with self._lock:
            for (model, strategy), (n, removed, seconds) in self._stats.items():
                out[model][strategy] = {
                    "invalidations": n,
                    "keys_removed": removed,
                    "seconds": round(seconds, 6),
                }
        return dict(out)

    def flush(self) -> None:
        """Apply every delayed and batched invalidation now (at shutdown, or in tests)."""
        self._scheduler.flush("delayed")
        self._scheduler.flush("batch")

    def close(self) -> None:
        self._scheduler.close()


class _Scheduler:
    """Holds delayed and batched tags and applies them from a timer thread."""

    def __init__(
        self, apply: Callable[[list[Group]], None], delay: float, interval: float, size: int
    ) -> None:
        self.apply, self.delay, self.interval, self.size = apply, delay, interval, size
        self._lock = threading.Lock()
        self._pending: dict[str, dict[str, set[str]]] = {
            "delayed": defaultdict(set),
            "batch": defaultdict(set),
        }
        self._timers: dict[str, threading.Timer] = {}

    def add(self, strategy: str, model: str, tags: set[str]) -> None:
        with self._lock:
            pending = self._pending[strategy]
            pending[model].update(tags)
            if strategy == "batch" and sum(map(len, pending.values())) >= self.size:
                self._start(strategy, 0.0, replace=True)
            elif strategy not in self._timers:
                self._start(strategy, self.delay if strategy == "delayed" else self.interval)

    def _start(self, strategy: str, after: float, replace: bool = False) -> None:
        old = self._timers.get(strategy)
        if old is not None:
            if not replace:
                return
            old.cancel()
        timer = threading.Timer(after, self.flush, (strategy,))
        timer.daemon = True
        self._timers[strategy] = timer
        timer.start()

    def flush(self, strategy: str) -> None:
        with self._lock:
            groups = self._pending[strategy]
            self._pending[strategy] = defaultdict(set)
            timer = self._timers.pop(strategy, None)
        if timer is not None and timer is not threading.current_thread():
            timer.cancel()
        if groups:
            try:
                self.apply([(m, strategy, t) for m, t in groups.items()])
            except Exception:
                log.exception("cache invalidation (%s) failed", strategy)

    def close(self) -> None:
        self.flush("delayed")
        self.flush("batch")
