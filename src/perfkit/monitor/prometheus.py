"""Prometheus text exposition of everything perfkit measures, on a registry the app owns.

Multi-process: every worker publishes its collector snapshot to the shared monitor store (SQLite by
default, Redis when configured). A scrape, answered by any one worker, sums the snapshots of all
processes: counters and histograms of every process still in the store (a stopped worker's counts stay,
so totals never go backwards), gauges only of processes that published recently. This keeps perfkit's
bounded in-process collector as the single source and needs no `PROMETHEUS_MULTIPROC_DIR` files.

Nothing is registered at import: `Exporter()` creates its `CollectorRegistry` when the monitor is built,
and applications may register their own metrics on `exporter.registry`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from perfkit.errors import MissingDependencyError

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _client() -> Any:
    try:
        import prometheus_client
    except ModuleNotFoundError as exc:
        raise MissingDependencyError("metrics", "prometheus_client", "monitor") from exc
    return prometheus_client


def _bound(value: float) -> str:
    return repr(float(value))


def families(snapshot: Mapping[str, Any], extra: Mapping[str, Any], prefix: str = "perfkit") -> Iterator[Any]:
    """prometheus_client metric families for a (merged) snapshot plus `extra` gauges {name: {labels: v}}."""
    core = _client().metrics_core
    for name, entry in sorted(snapshot["metrics"].items()):
        full = f"{prefix}_{name}"
        labels = list(entry["labels"])
        help_text = entry.get("help") or name
        kind = entry["kind"]
        if kind == "counter":
            family: Any = core.CounterMetricFamily(full.removesuffix("_total"), help_text, labels=labels)
            for values, value in entry["series"]:
                family.add_metric(values, value)
        elif kind == "gauge":
            family = core.GaugeMetricFamily(full, help_text, labels=labels)
            for values, value in entry["series"]:
                family.add_metric(values, value)
        else:
            family = core.HistogramMetricFamily(full, help_text, labels=labels)
            bounds = entry["buckets"]
            for values, row in entry["series"]:
                cumulative, points = 0.0, []
                for bound, count in zip([*bounds, float("inf")], row[:-1], strict=True):
                    cumulative += count
                    points.append(("+Inf" if bound == float("inf") else _bound(bound), cumulative))
                family.add_metric(values, points, sum_value=row[-1])
        yield family
    for name, spec in sorted(extra.items()):
        help_text, label_names, series = spec
        family = core.GaugeMetricFamily(f"{prefix}_{name}", help_text, labels=list(label_names))
        for values, value in series:
            family.add_metric(list(values), value)
        yield family


class _SnapshotCollector:
    """Yields the families of the snapshot handed to it just before each scrape."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.snapshot: Mapping[str, Any] = {"metrics": {}}
        self.extra: Mapping[str, Any] = {}

    def collect(self) -> Iterator[Any]:
        return families(self.snapshot, self.extra, self.prefix)

    def describe(self) -> list[Any]:
        return []  # dynamic names: nothing to check at registration time


class Exporter:
    """An app-owned `CollectorRegistry` with perfkit's metrics on it; `render()` gives the text format."""

    def __init__(self, prefix: str = "perfkit") -> None:
        client = _client()
        self.registry = client.CollectorRegistry(auto_describe=False)
        self._collector = _SnapshotCollector(prefix)
        self.registry.register(self._collector)
        self._generate = client.generate_latest

    def render(self, snapshot: Mapping[str, Any], extra: Mapping[str, Any]) -> bytes:
        # set and generate without an await in between: concurrent scrapes cannot interleave
        self._collector.snapshot, self._collector.extra = snapshot, extra
        try:
            body: bytes = self._generate(self.registry)
        finally:
            self._collector.snapshot, self._collector.extra = {"metrics": {}}, {}
        return body
