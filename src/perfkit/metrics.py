"""The in-process collector every perfkit part writes to and the monitoring part reads.

Memory is bounded by construction: counters, gauges and fixed-bucket histograms live in families with a
cap on distinct label sets (extra label sets fold into one `__overflow__` series), and findings (slow
queries, N+1, slow requests, ...) go into ring buffers. Nothing here imports the web, db, cache or jobs
parts; they import this.

Several worker processes each own a collector; `Collector.snapshot()` returns plain data and
`merge()` adds snapshots together (counters and histograms sum, gauges sum, findings concatenate), which
is what a multi-process exporter needs. `RequestStats` is the per-request scratch pad (a contextvar)
that the database and cache hooks add to and the timing middleware reads for `Server-Timing`.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextvars import ContextVar, Token
from typing import Any
from weakref import WeakKeyDictionary

LATENCY_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
SIZE_BUCKETS: tuple[float, ...] = (128, 512, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304)
OVERFLOW = "__overflow__"

Labels = tuple[str, ...]


class Family:
    """A metric name with fixed label names and at most `max_series` label sets."""

    kind = "untyped"

    def __init__(self, name: str, labels: Labels, help: str, max_series: int, *, locked: bool = True) -> None:
        self.name, self.label_names, self.help = name, labels, help
        self.max_series = max_series
        # locked=False: one writer thread (the event loop); an existing series is updated without the lock
        # (it costs ~3x the update itself), a new one is still created under it
        self.locked = locked
        self._lock = threading.Lock()

    def _key(self, values: Labels, series: Mapping[Labels, Any]) -> Labels:
        if values in series or len(series) < self.max_series:
            return values
        return (OVERFLOW,) * len(self.label_names)


class Counter(Family):
    kind = "counter"

    def __init__(self, name: str, labels: Labels, help: str, max_series: int, *, locked: bool = True) -> None:
        super().__init__(name, labels, help, max_series, locked=locked)
        self.series: dict[Labels, float] = {}

    def inc(self, values: Labels = (), amount: float = 1.0) -> None:
        series = self.series
        if not self.locked:
            current = series.get(values)
            if current is not None:
                series[values] = current + amount
                return
        with self._lock:
            key = values if values in series else self._key(values, series)
            series[key] = series.get(key, 0.0) + amount

    def value(self, values: Labels = ()) -> float:
        return self.series.get(values, 0.0)


class Gauge(Counter):
    """A value per label set; `track(fn)` makes the unlabelled value read from `fn` at snapshot time."""

    kind = "gauge"
    _fn: Any = None

    def track(self, fn: Any) -> None:
        self._fn = fn

    def value(self, values: Labels = ()) -> float:
        if self._fn is not None and values == ():
            return float(self._fn())
        return self.series.get(values, 0.0)

    def set(self, values: Labels, value: float) -> None:
        with self._lock:
            self.series[self._key(values, self.series)] = value


class Histogram(Family):
    """Fixed buckets (upper bounds, plus +Inf), sum and count per label set."""

    kind = "histogram"

    def __init__(
        self,
        name: str,
        labels: Labels,
        help: str,
        max_series: int,
        buckets: tuple[float, ...],
        *,
        locked: bool = True,
    ) -> None:
        super().__init__(name, labels, help, max_series, locked=locked)
        self.buckets = buckets
        # per label set: [count per bucket..., +Inf count, sum]
        self.series: dict[Labels, list[float]] = {}
        # per label set: [smallest, largest] value observed; percentiles never leave that range
        self.extremes: dict[Labels, list[float]] = {}

    def observe(self, values: Labels, amount: float) -> None:
        index = bisect_left(self.buckets, amount)
        series = self.series
        if not self.locked:
            row = series.get(values)
            if row is not None:
                row[index] += 1
                row[-1] += amount
                seen = self.extremes[values]
                if amount < seen[0]:
                    seen[0] = amount
                if amount > seen[1]:
                    seen[1] = amount
                return
        with self._lock:
            row = series.get(values)
            if row is None:
                key = self._key(values, series)
                row = series.get(key)
                if row is None:
                    row = series[key] = [0.0] * (len(self.buckets) + 2)
                    self.extremes[key] = [amount, amount]
            else:
                key = values
            row[index] += 1
            row[-1] += amount
            seen = self.extremes[key]
            if amount < seen[0]:
                seen[0] = amount
            if amount > seen[1]:
                seen[1] = amount

    def series_for(self, values: Labels, amount: float) -> HistogramSeries:
        """`observe(values, amount)`, returning the series it went to (the overflow series past
        `max_series`): a handle whose `observe(amount)` skips the lookups, for a hot path that observes
        one label set again and again from one thread (a `locked=False` family)."""
        self.observe(values, amount)
        with self._lock:
            key = values if values in self.series else self._key(values, self.series)
            return HistogramSeries(self.buckets, self.series[key], self.extremes[key])

    def count(self, values: Labels = ()) -> int:
        row = self.series.get(values)
        return int(sum(row[:-1])) if row else 0

    def quantile(self, q: float, values: Labels | None = None) -> float | None:
        """Estimate the q-quantile by linear interpolation inside the bucket (as Prometheus does),
        kept within the smallest and largest value observed."""
        keys = [values] if values is not None and values in self.series else []
        if values is None:
            keys = list(self.series)
        rows = [self.series[k] for k in keys]
        return bucket_quantile(q, self.buckets, rows, span([self.extremes.get(k) for k in keys]))


class HistogramSeries:
    """One label set of a `Histogram` (from `series_for`): its bucket row and its extremes."""

    __slots__ = ("buckets", "row", "seen")

    def __init__(self, buckets: tuple[float, ...], row: list[float], seen: list[float]) -> None:
        self.buckets, self.row, self.seen = buckets, row, seen

    def observe(self, amount: float, other: HistogramSeries | None = None, other_amount: float = 0.0) -> None:
        """Add `amount`; with `other`, add `other_amount` to that series too, in the same call (a request
        updates two histograms in one frame)."""
        row = self.row
        row[bisect_left(self.buckets, amount)] += 1
        row[-1] += amount
        seen = self.seen
        if amount < seen[0]:
            seen[0] = amount
        elif amount > seen[1]:  # (elif: one value cannot be both below the min and above the max)
            seen[1] = amount
        if other is not None:  # (the same four steps on the other series, not a loop: fewer bytecodes)
            row = other.row
            row[bisect_left(other.buckets, other_amount)] += 1
            row[-1] += other_amount
            seen = other.seen
            if other_amount < seen[0]:
                seen[0] = other_amount
            elif other_amount > seen[1]:
                seen[1] = other_amount


def span(extremes: Iterable[Sequence[float] | None]) -> tuple[float, float] | None:
    """The (min, max) over several series' extremes; None when any of them is unknown."""
    low, high = float("inf"), float("-inf")
    for item in extremes:
        if item is None:
            return None
        low, high = min(low, item[0]), max(high, item[1])
    return None if low > high else (low, high)


def bucket_quantile(
    q: float,
    buckets: tuple[float, ...],
    rows: Iterable[list[float]],
    observed: tuple[float, float] | None = None,
) -> float | None:
    """The q-quantile interpolated inside its bucket; with `observed` (min, max), clamped to that range:
    interpolation alone can land above the largest value measured (p99 3.4 s when the max was 2.7 s)."""
    value = _interpolated(q, buckets, rows)
    if value is None or observed is None:
        return value
    return min(max(value, observed[0]), observed[1])


def _interpolated(q: float, buckets: tuple[float, ...], rows: Iterable[list[float]]) -> float | None:
    counts = [0.0] * (len(buckets) + 1)
    for row in rows:
        for i in range(len(counts)):
            counts[i] += row[i]
    total = sum(counts)
    if total == 0:
        return None
    rank, seen = q * total, 0.0
    for i, n in enumerate(counts):
        if seen + n >= rank and n > 0:
            if i == len(buckets):
                return buckets[-1]
            lower = buckets[i - 1] if i else 0.0
            return lower + (buckets[i] - lower) * ((rank - seen) / n)
        seen += n
    return buckets[-1]


class Collector:
    """Counters, gauges, histograms and findings of one process, with bounded memory."""

    def __init__(self, *, max_series: int = 2000, ring_size: int = 500) -> None:
        self.max_series = max_series
        self.ring_size = ring_size
        self.families: dict[str, Family] = {}
        self._findings: dict[str, deque[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self.started = time.time()
        self._sources: WeakKeyDictionary[Any, set[str]] = WeakKeyDictionary()

    def attach(self, source: Any, hook: str) -> bool:
        """True the first time `hook` is attached to `source` for this collector, False after: a hook
        that feeds this collector from `source` (its job events, say) is added once however many
        parts ask for it."""
        with self._lock:
            hooks = self._sources.setdefault(source, set())
            if hook in hooks:
                return False
            hooks.add(hook)
            return True

    def _family(self, cls: type[Family], name: str, labels: Labels, help: str, **kw: Any) -> Any:
        family = self.families.get(name)
        if family is None:
            with self._lock:
                family = self.families.get(name)
                if family is None:
                    family = cls(name, labels, help, self.max_series, **kw)
                    self.families[name] = family
        if type(family) is not cls or family.label_names != labels:
            raise ValueError(f"metric {name!r} already registered as {family.kind}{family.label_names}")
        return family

    def counter(self, name: str, labels: Labels = (), help: str = "", *, locked: bool = True) -> Counter:
        """`locked=False` for a family written from one thread only (the event loop): see `Family`."""
        family: Counter = self._family(Counter, name, labels, help, locked=locked)
        return family

    def gauge(self, name: str, labels: Labels = (), help: str = "") -> Gauge:
        family: Gauge = self._family(Gauge, name, labels, help)
        return family

    def histogram(
        self,
        name: str,
        labels: Labels = (),
        help: str = "",
        buckets: tuple[float, ...] = LATENCY_BUCKETS,
        *,
        locked: bool = True,
    ) -> Histogram:
        family: Histogram = self._family(Histogram, name, labels, help, buckets=buckets, locked=locked)
        return family

    def record(self, kind: str, finding: dict[str, Any]) -> None:
        """Append a finding (slow query, N+1, ...) to the ring buffer of its kind."""
        ring = self._findings.get(kind)
        if ring is None:
            with self._lock:
                ring = self._findings.setdefault(kind, deque(maxlen=self.ring_size))
        finding.setdefault("at", time.time())
        ring.append(finding)

    def findings(self, kind: str) -> list[dict[str, Any]]:
        return list(self._findings.get(kind, ()))

    def finding_kinds(self) -> list[str]:
        return sorted(self._findings)

    def snapshot(self) -> dict[str, Any]:
        """Plain, JSON-able data: what an exporter or `merge()` consumes."""
        metrics: dict[str, Any] = {}
        for name, family in list(self.families.items()):
            entry: dict[str, Any] = {"kind": family.kind, "labels": list(family.label_names)}
            entry["help"] = family.help
            if isinstance(family, Histogram):
                entry["buckets"] = list(family.buckets)
                entry["extremes"] = [[list(k), list(v)] for k, v in list(family.extremes.items())]
            series = family.series  # type: ignore[attr-defined]  # every concrete family has series
            if isinstance(family, Gauge) and family._fn is not None:
                series = {**series, (): family.value()}
            entry["series"] = [[list(k), list(v) if isinstance(v, list) else v] for k, v in series.items()]
            metrics[name] = entry
        findings = {kind: list(ring) for kind, ring in self._findings.items()}
        return {"started": self.started, "metrics": metrics, "findings": findings}

    def reset(self) -> None:
        with self._lock:
            self.families.clear()
            self._findings.clear()


def merge_extremes(
    known: Mapping[tuple[str, ...], list[float] | None], entry: Mapping[str, Any]
) -> dict[tuple[str, ...], list[float] | None]:
    """Fold one histogram entry's extremes into `known` (series -> [min, max], None when unknown).

    A series that `entry` has but gives no extremes for (a snapshot of an older release) becomes
    unknown: an unknown maximum must not cap anything.
    """
    out = dict(known)
    given = {tuple(k): v for k, v in entry.get("extremes", [])}
    for labels, _ in entry["series"]:
        key = tuple(labels)
        new = given.get(key)
        if new is None:
            out[key] = None
        elif key not in out:
            out[key] = [float(new[0]), float(new[1])]
        elif (old := out[key]) is not None:
            out[key] = [min(old[0], new[0]), max(old[1], new[1])]
    return out


def merge(snapshots: Iterable[Mapping[str, Any]], ring_size: int = 500) -> dict[str, Any]:
    """Add the snapshots of several processes together (counters, gauges and histograms sum)."""
    metrics: dict[str, Any] = {}
    extremes: dict[str, dict[tuple[str, ...], list[float] | None]] = {}
    findings: dict[str, list[dict[str, Any]]] = {}
    started = None
    for snap in snapshots:
        started = snap["started"] if started is None else min(started, snap["started"])
        for name, entry in snap["metrics"].items():
            target = metrics.setdefault(name, {**entry, "series": []})
            rows: dict[tuple[str, ...], Any] = {tuple(k): v for k, v in target["series"]}
            for labels, value in entry["series"]:
                key = tuple(labels)
                old = rows.get(key)
                if old is None:
                    rows[key] = list(value) if isinstance(value, list) else value
                elif isinstance(old, list):
                    rows[key] = [a + b for a, b in zip(old, value, strict=True)]
                else:
                    rows[key] = old + value
            target["series"] = [[list(k), v] for k, v in rows.items()]
            if entry["kind"] == "histogram":
                extremes[name] = merge_extremes(extremes.get(name, {}), entry)
                target["extremes"] = [[list(k), v] for k, v in extremes[name].items() if v is not None]
        for kind, items in snap["findings"].items():
            findings.setdefault(kind, []).extend(items)
    for kind, items in findings.items():
        items.sort(key=lambda f: f.get("at", 0))
        findings[kind] = items[-ring_size:]
    return {"started": started, "metrics": metrics, "findings": findings}


class RequestStats:
    """What one request spent in the database and the cache; filled by hooks, read by middleware."""

    __slots__ = (
        "cache_count", "cache_time", "db_count", "db_time", "lazy_loads", "loaders", "route", "statements",
    )  # fmt: skip

    def __init__(self, route: str = "") -> None:
        self.route = route
        self.db_count = 0
        self.db_time = 0.0
        self.cache_count = 0
        self.cache_time = 0.0
        self.lazy_loads: dict[tuple[str, str], int] = {}
        self.statements: dict[int, int] = {}
        # the request's batching-loader scope (perfkit.loader opens it on first use): opaque here
        self.loaders: Any = None


_current: ContextVar[RequestStats | None] = ContextVar("perfkit_request", default=None)


# The request-stats seam shared by the web layer (which opens and ends a request) and the db and cache
# hooks (which add to it). The two bound methods are the public names themselves: no call in between.
#: `current_request()`: the stats of the request being served in this context, or None outside one.
current_request: Callable[[], RequestStats | None] = _current.get
#: `end_request(token)`: end what `start_request` began (its token), restoring the outer request if any.
end_request: Callable[[Token[RequestStats | None]], None] = _current.reset


def start_request(route: str = "") -> tuple[RequestStats, Token[RequestStats | None]]:
    """Begin collecting for a request; returns the stats and the token for `end_request`."""
    stats = RequestStats(route)
    return stats, _current.set(stats)


def add_cache_time(seconds: float) -> None:
    """Called by the cache's metrics hook: counts one cache operation against the current request."""
    stats = current_request()
    if stats is not None:
        stats.cache_count += 1
        stats.cache_time += seconds


def cache_observer(collector: Collector) -> Any:
    """An observer for `Cache.add_observer`: counts cache operations and adds their time to the request."""
    ops = collector.counter(
        "cache_operations_total", ("namespace", "tier", "op", "outcome"), "Cache tier operations"
    )

    def observe(namespace: str, tier: str, op: str, outcome: str, seconds: float) -> None:
        ops.inc((namespace, tier, op, outcome))
        stats = _current.get()
        if stats is not None:
            stats.cache_count += 1
            stats.cache_time += seconds

    return observe


_default: Collector | None = None


def default_collector() -> Collector:
    """The process-wide collector, created on first use (never at import)."""
    global _default
    if _default is None:
        _default = Collector()
    return _default
