"""Arithmetic on collector snapshots: the delta between two, and the sum of several.

A snapshot is `Collector.snapshot()`'s plain data. Counters and histograms are cumulative, so the delta
of two snapshots is what happened in between; gauges are levels, so deltas leave them out and a
window's gauges come from the live snapshots instead. A histogram's extremes (the smallest and largest
value observed per series) are not cumulative: a delta keeps the process's extremes so far, which bound
what the window saw (its maximum is at most that), so a percentile clamped to them stays correct.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from perfkit.metrics import merge

Snapshot = dict[str, Any]


def empty(started: float = 0.0) -> Snapshot:
    return {"started": started, "metrics": {}, "findings": {}}


def diff(current: Mapping[str, Any], previous: Mapping[str, Any] | None) -> Snapshot:
    """Counters and histograms of `current` minus `previous` (no gauges, no findings)."""
    before = previous["metrics"] if previous else {}
    metrics: dict[str, Any] = {}
    for name, entry in current["metrics"].items():
        if entry["kind"] == "gauge":
            continue
        old_rows = {tuple(k): v for k, v in before.get(name, {}).get("series", [])}
        rows = []
        for labels, value in entry["series"]:
            old = old_rows.get(tuple(labels))
            if isinstance(value, list):
                delta: Any = value if old is None else [a - b for a, b in zip(value, old, strict=True)]
                if any(delta[:-1]):
                    rows.append([labels, delta])
            else:
                change = value - (old or 0.0)
                if change:
                    rows.append([labels, change])
        if rows:
            metrics[name] = {**entry, "series": rows}
            if "extremes" in entry:  # the process's extremes so far: bounds for what the window saw
                kept = {tuple(labels) for labels, _ in rows}
                metrics[name]["extremes"] = [e for e in entry["extremes"] if tuple(e[0]) in kept]
    return {"started": current.get("started", 0.0), "metrics": metrics, "findings": {}}


def add(snapshots: Iterable[Mapping[str, Any]]) -> Snapshot:
    """The sum of snapshots or rollups (`perfkit.metrics.merge`), tolerant of an empty list."""
    items = [s for s in snapshots if s]
    if not items:
        return empty()
    merged = merge(items)
    merged["started"] = merged["started"] or 0.0
    return merged


def without_gauges(snapshot: Mapping[str, Any]) -> Snapshot:
    metrics = {n: e for n, e in snapshot["metrics"].items() if e["kind"] != "gauge"}
    return {**snapshot, "metrics": metrics}


def retire(aggregate: Mapping[str, Any] | None, dead: Iterable[Mapping[str, Any]]) -> Snapshot:
    """The retired aggregate with the last snapshots of dead processes folded in (their gauges dropped:
    a stopped process has no level). Counters, histograms and findings (a bounded ring) add up."""
    return add([aggregate or empty(), *(without_gauges(s) for s in dead)])


def since(current: Mapping[str, Any], baseline: Mapping[str, Any] | None) -> Snapshot:
    """`current` with what `baseline` (already folded into the retired aggregate) held taken out: its
    counters and histograms minus the baseline's, its gauges as they are, its findings newer than any
    of the baseline's. `since(s, None)` is `s`."""
    if baseline is None:
        return dict(current)
    out = diff(current, baseline)
    for name, entry in current["metrics"].items():
        if entry["kind"] == "gauge":
            out["metrics"][name] = entry
    findings: dict[str, Any] = {}
    for kind, items in current.get("findings", {}).items():
        last = max((f.get("at", 0) for f in baseline.get("findings", {}).get(kind, [])), default=-1.0)
        findings[kind] = [f for f in items if f.get("at", 0) > last]
    out["findings"] = findings
    return out


def rows(snapshot: Mapping[str, Any], name: str) -> list[tuple[tuple[str, ...], Any]]:
    """The series of one metric as (labels, value) pairs; [] when it was never recorded."""
    entry = snapshot["metrics"].get(name)
    return [(tuple(k), v) for k, v in entry["series"]] if entry else []


def extremes(snapshot: Mapping[str, Any], name: str) -> dict[tuple[str, ...], list[float]]:
    """A histogram's observed [min, max] per series (series without known extremes are absent)."""
    entry = snapshot["metrics"].get(name)
    return {tuple(k): v for k, v in entry.get("extremes", [])} if entry else {}


def buckets(snapshot: Mapping[str, Any], name: str) -> tuple[float, ...]:
    entry = snapshot["metrics"].get(name)
    return tuple(entry["buckets"]) if entry and "buckets" in entry else ()
