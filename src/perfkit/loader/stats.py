"""What a loader did: counts, recent batch sizes and waits, and the collector families they feed.

`LoaderStats.snapshot()` is the JSON-able `Loader.stats()`; the same events go into perfkit's collector
(`perfkit.metrics`) as `loader_loads_total{loader,outcome}`, `loader_batches_total{loader}`,
`loader_batch_size{loader}`, `loader_wait_seconds{loader}`, `loader_batch_seconds{loader}` and
`loader_fallbacks_total{loader,reason}`, for the monitor and `perfkit serve`.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from perfkit.metrics import LATENCY_BUCKETS, Collector

__all__ = ["BATCH_SIZE_BUCKETS", "LoaderStats"]

BATCH_SIZE_BUCKETS: tuple[float, ...] = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
RECENT = 1024  # batches (and waits) kept for the percentiles of `stats()`


def _summary(values: deque[float], scale: float = 1.0) -> dict[str, float]:
    if not values:
        return {"mean": 0.0, "p50": 0.0, "p99": 0.0, "max": 0.0}
    ordered = sorted(values)
    n = len(ordered)

    def at(q: float) -> float:
        return round(ordered[min(n - 1, int(q * n))] * scale, 4)

    return {"mean": round(sum(ordered) / n * scale, 4), "p50": at(0.5), "p99": at(0.99), "max": at(1.0)}


class LoaderStats:
    """Counters of one loader across every scope, and the families of `collector` they also feed."""

    def __init__(self, name: str, collector: Collector) -> None:
        self.name = name
        self.collector = collector
        self.loads = self.hits = self.shared_hits = self.misses = 0
        self.batches = self.keys_loaded = 0
        self.fallbacks = self.errors = self.timeouts = 0
        self.sizes: deque[float] = deque(maxlen=RECENT)
        self.waits: deque[float] = deque(maxlen=RECENT)
        self.durations: deque[float] = deque(maxlen=RECENT)
        label = (name,)
        self._label = label
        self._loads = collector.counter(
            "loader_loads_total",
            ("loader", "outcome"),
            "Loader load() calls by outcome (hit, shared_hit, miss)",
            locked=False,
        )
        self._batches = collector.counter(
            "loader_batches_total", ("loader",), "Loader batch function calls", locked=False
        )
        self._size = collector.histogram(
            "loader_batch_size", ("loader",), "Keys per loader batch call", BATCH_SIZE_BUCKETS, locked=False
        )
        self._wait = collector.histogram(
            "loader_wait_seconds", ("loader",), "From load() to its batch call", LATENCY_BUCKETS, locked=False
        )
        self._duration = collector.histogram(
            "loader_batch_seconds", ("loader",), "Loader batch call duration", LATENCY_BUCKETS, locked=False
        )
        self._fallbacks = collector.counter(
            "loader_fallbacks_total", ("loader", "reason"), "Loads answered by the fallback (timeout, error)"
        )

    def load(self, outcome: str) -> None:
        """One load() call: "hit" (request scope), "shared_hit" (shared cache) or "miss"."""
        if outcome == "shared_hit":
            self.shared_hits += 1
            self.hits += 1
            self.misses -= 1  # it was counted a miss when it joined the batch
        elif outcome == "hit":
            self.loads += 1
            self.hits += 1
        else:
            self.loads += 1
            self.misses += 1
        self._loads.inc((self.name, outcome))

    def batch(self, size: int, waits: list[float], seconds: float) -> None:
        self.batches += 1
        self.keys_loaded += size
        self.sizes.append(size)
        self.durations.append(seconds)
        self._batches.inc(self._label)
        self._size.observe(self._label, size)
        self._duration.observe(self._label, seconds)
        for w in waits:
            self.waits.append(w)
            self._wait.observe(self._label, w)

    def failure(self, reason: str, fell_back: int) -> None:
        """A batch failed ("timeout" or "error"); `fell_back` of its keys got their fallback value."""
        if reason == "timeout":
            self.timeouts += 1
        else:
            self.errors += 1
        if fell_back:
            self.fallbacks += fell_back
            self._fallbacks.inc((self.name, reason), fell_back)

    def snapshot(self, pending: int = 0) -> dict[str, Any]:
        return {
            "name": self.name,
            "loads": self.loads,
            "hits": self.hits,
            "shared_hits": self.shared_hits,
            "misses": self.misses,
            "hit_ratio": round(self.hits / self.loads, 4) if self.loads else 0.0,
            "batches": self.batches,
            "keys_loaded": self.keys_loaded,
            "batch_size": _summary(self.sizes),
            "wait_ms": _summary(self.waits, 1000.0),
            "batch_ms": _summary(self.durations, 1000.0),
            "fallbacks": self.fallbacks,
            "errors": self.errors,
            "timeouts": self.timeouts,
            "pending": pending,
        }
