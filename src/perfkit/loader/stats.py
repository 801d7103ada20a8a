"""What a loader did: counts, recent batch sizes and waits, and the collector families they feed.

`LoaderStats.snapshot()` is the JSON-able `Loader.stats()`; the same events go into perfkit's collector
(`perfkit.metrics`) as `loader_loads_total{loader,outcome}`, `loader_batches_total{loader}`,
`loader_batch_size{loader}`, `loader_wait_seconds{loader}`, `loader_batch_seconds{loader}` and
`loader_fallbacks_total{loader,reason}`, for the monitor and `perfkit serve`.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from perfkit.metrics import LATENCY_BUCKETS, Collector, default_collector

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


class _Families:
    """The collector families every loader feeds (one set per collector)."""

    def __init__(self, collector: Collector) -> None:
        self.loads = collector.counter(
            "loader_loads_total",
            ("loader", "outcome"),
            "Loader load() calls by outcome (hit, shared_hit, miss)",
            locked=False,
        )
        self.batches = collector.counter(
            "loader_batches_total", ("loader",), "Loader batch function calls", locked=False
        )
        self.size = collector.histogram(
            "loader_batch_size", ("loader",), "Keys per loader batch call", BATCH_SIZE_BUCKETS, locked=False
        )
        self.wait = collector.histogram(
            "loader_wait_seconds",
            ("loader",),
            "From the oldest load of a batch to its call",
            LATENCY_BUCKETS,
            locked=False,
        )
        self.duration = collector.histogram(
            "loader_batch_seconds", ("loader",), "Loader batch call duration", LATENCY_BUCKETS, locked=False
        )
        self.fallbacks = collector.counter(
            "loader_fallbacks_total", ("loader", "reason"), "Loads answered by the fallback (timeout, error)"
        )


class LoaderStats:
    """Counters of one loader across every scope, and the families of `collector` they also feed."""

    def __init__(self, name: str, collector: Collector | None) -> None:
        self.name = name
        self.collector = collector
        self.hits = self.shared_hits = self.misses = 0
        self._told = 0  # request-cache hits already added to the collector
        self.batches = self.keys_loaded = 0
        self.fallbacks = self.errors = self.timeouts = 0
        self.sizes: deque[float] = deque(maxlen=RECENT)
        self.waits: deque[float] = deque(maxlen=RECENT)
        self.durations: deque[float] = deque(maxlen=RECENT)
        self._label = (name,)
        self._hit, self._miss, self._shared = (name, "hit"), (name, "miss"), (name, "shared_hit")
        self._families: _Families | None = None  # made at the first batch: a Loader at import is free

    @property
    def f(self) -> _Families:
        if self._families is None:
            self._families = _Families(self.collector or default_collector())
        return self._families

    def flush(self) -> None:
        """Tell the collector the hits counted since the last flush (loads add `hits += 1` only)."""
        new = self.hits - self.shared_hits - self._told
        if new:
            self._told += new
            self.f.loads.inc(self._hit, new)

    def missed(self, n: int) -> None:
        """`n` keys went to a batch (each was one load that found nothing in the request's cache)."""
        self.misses += n
        self.f.loads.inc(self._miss, n)

    def shared_hit(self) -> None:
        """One of those keys was answered by the shared cache after all."""
        self.shared_hits += 1
        self.hits += 1
        self.misses -= 1
        self.f.loads.inc(self._shared)
        self.f.loads.inc(self._miss, -1)

    def batch(self, size: int, wait: float, seconds: float) -> None:
        """One batch call of `size` keys, whose oldest key waited `wait` s for it, lasting `seconds`."""
        self.flush()
        self.batches += 1
        self.keys_loaded += size
        self.sizes.append(size)
        self.durations.append(seconds)
        self.waits.append(wait)
        self.f.batches.inc(self._label)
        self.f.size.observe(self._label, size)
        self.f.duration.observe(self._label, seconds)
        self.f.wait.observe(self._label, wait)

    def failure(self, reason: str, fell_back: int) -> None:
        """A batch failed ("timeout" or "error"); `fell_back` of its keys got their fallback value."""
        if reason == "timeout":
            self.timeouts += 1
        else:
            self.errors += 1
        if fell_back:
            self.fallbacks += fell_back
            self.f.fallbacks.inc((self.name, reason), fell_back)

    def snapshot(self, pending: int = 0) -> dict[str, Any]:
        self.flush()
        return {
            "name": self.name,
            "loads": self.hits + self.misses,
            "hits": self.hits,
            "shared_hits": self.shared_hits,
            "misses": self.misses,
            "hit_ratio": round(self.hits / (self.hits + self.misses), 4) if self.hits + self.misses else 0.0,
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
