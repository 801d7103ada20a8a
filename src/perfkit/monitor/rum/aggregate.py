"""Beacons into the collector: one observation per metric id, with the deltas of that id summed.

web-vitals reports a metric again when it changes (CLS grows while the page lives, INP moves with each
slow interaction), each report carrying the same `id`, the new `value` and the `delta` since the last
one. A histogram must count each page view once, with its final value, so an id's first report opens
a pending entry, later ones add their deltas to it, and the entry is observed once it is `settle`
seconds old (or when the pending table is full, or on shutdown). A delta that arrives after its id
was counted (its `delta` differs from its `value`, yet the id is not pending) is counted as `late`
and dropped: observing it would count the page view twice, and moving the old observation would make
Prometheus' cumulative buckets go backwards.

Cardinality is bounded per process: at most `max_routes` routes and `max_targets` (route, target)
pairs per metric, the rest folded into "other"; the collector bounds every family besides.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from perfkit.metrics import Collector
from perfkit.monitor.rum.config import RumConfig
from perfkit.monitor.rum.vitals import ATTRIBUTED, BEACONS, TARGETS, TTFB_REST, TTFB_SERVER, VITALS

if TYPE_CHECKING:
    from perfkit.monitor.rum.schema import Beacon

OTHER = "other"
MAX_TARGET = 120  # characters of a target selector kept (web-vitals' own are short CSS paths)


class Pending:
    __slots__ = ("at", "device", "name", "route", "server", "target", "value")

    def __init__(self, name: str, route: str, device: str, value: float, at: float) -> None:
        self.name, self.route, self.device, self.value, self.at = name, route, device, value, at
        self.target: str | None = None
        self.server: float | None = None


class RumAggregator:
    """What the collector endpoint feeds: pending metric ids, flushed into the collector's families."""

    def __init__(self, config: RumConfig, collector: Collector) -> None:
        self.config = config
        self.settle = float(config.settle)
        labels = ("route", "device")
        # locked=False: written from the event loop only (the endpoint, the settle task, the report)
        self.histograms = {
            name: collector.histogram(v.family, labels, v.help, v.buckets, locked=False)
            for name, v in VITALS.items()
        }
        ttfb = VITALS["TTFB"].buckets
        self.server = collector.histogram(
            TTFB_SERVER, labels, "TTFB: the server's time (Server-Timing)", ttfb
        )
        self.rest = collector.histogram(
            TTFB_REST, labels, "TTFB less the server's time (network, queues)", ttfb
        )
        self.targets = collector.counter(
            TARGETS, ("metric", "route", "target"), "Page views per attribution target (RUM)", locked=False
        )
        self.beacons = collector.counter(BEACONS, ("outcome",), "RUM beacons per outcome", locked=False)
        self.pending: dict[str, Pending] = {}  # in arrival order: the oldest first
        self._routes: set[str] = set()
        self._targets: dict[str, set[tuple[str, str]]] = {name: set() for name in ATTRIBUTED}

    def count(self, outcome: str, amount: float = 1.0) -> None:
        self.beacons.inc((outcome,), amount)

    def route(self, route: str) -> str:
        """`route`, or "other" once `max_routes` distinct routes were seen."""
        if route in self._routes:
            return route
        if len(self._routes) >= self.config.max_routes:
            return OTHER
        self._routes.add(route)
        return route

    def add(self, beacon: Beacon, route: str, device: str, now: float | None = None) -> int:
        """Take one beacon's metrics (route and device already decided); returns how many were late."""
        now = time.time() if now is None else now
        route = self.route(route)
        pending, late = self.pending, 0
        for m in beacon.metrics:
            key = f"{m.name}:{m.id}"
            entry = pending.get(key)
            if entry is None:
                if abs(m.value - m.delta) > 1e-6 * max(1.0, m.value):  # a later report of a counted id
                    late += 1
                    continue
                if len(pending) >= self.config.max_pending:
                    self._observe(pending.pop(next(iter(pending))))
                entry = pending[key] = Pending(m.name, route, device, 0.0, now)
            entry.value += m.delta
            if m.target:
                entry.target = m.target[:MAX_TARGET]
            if m.server is not None:
                entry.server = m.server
        self.count("accepted")
        if late:
            self.count("late", late)
        self.flush(now)
        return late

    def flush(self, now: float | None = None, *, everything: bool = False) -> int:
        """Observe the pending ids older than `settle` (all of them with `everything`); how many."""
        cutoff = (time.time() if now is None else now) - self.settle
        pending, done = self.pending, 0
        while pending:
            key = next(iter(pending))
            if not everything and pending[key].at > cutoff:
                break
            self._observe(pending.pop(key))
            done += 1
        return done

    def _observe(self, entry: Pending) -> None:
        vital = VITALS[entry.name]
        value = max(0.0, entry.value)
        labels = (entry.route, entry.device)
        self.histograms[entry.name].observe(labels, value / vital.scale)
        if entry.name == "TTFB" and entry.server is not None:
            server = min(entry.server, value)
            self.server.observe(labels, server / 1000)
            self.rest.observe(labels, (value - server) / 1000)
        if entry.target and entry.name in self._targets:
            seen, pair = self._targets[entry.name], (entry.route, entry.target)
            if pair not in seen:
                if len(seen) >= self.config.max_targets:
                    pair = (entry.route, OTHER)
                else:
                    seen.add(pair)
            self.targets.inc((entry.name, *pair))
