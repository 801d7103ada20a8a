"""Comparing a run with a baseline report: regressions beyond a noise band.

A latency percentile (p50, p95, p99) regresses when it is both `tolerance` (default 10 %) higher and
at least `min_ms` (default 1 ms) higher, so that microsecond jitter on fast endpoints does not alarm;
throughput regresses when it drops by more than `tolerance`; the error rate when it rises by more
than one percentage point. Only names present in both reports are compared.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from perfkit.bench.report.schema import SCHEMA
from perfkit.errors import ConfigurationError

COMPARED = ("p50", "p95", "p99")


def load(path: str) -> dict[str, Any]:
    try:
        doc: dict[str, Any] = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigurationError("--baseline", f"cannot read {path!r}: {exc}") from None
    if doc.get("schema") != SCHEMA:
        raise ConfigurationError(
            "--baseline", f"{path!r} is not a {SCHEMA} report (schema={doc.get('schema')!r})"
        )
    return doc


def compare(
    current: dict[str, Any], base: dict[str, Any], tolerance: float = 0.10, min_ms: float = 1.0
) -> list[dict[str, Any]]:
    """One row per compared metric: name, metric, baseline, current, change (fraction), regression."""
    rows: list[dict[str, Any]] = []
    for name, cur in current["names"].items():
        old = base["names"].get(name)
        if old is None or not cur["requests"] or not old["requests"]:
            continue
        lat_c, lat_o = cur["latency_ms"] or {}, old["latency_ms"] or {}
        for metric in COMPARED:
            if metric in lat_c and metric in lat_o and lat_o[metric] > 0:
                a, b = lat_o[metric], lat_c[metric]
                change = (b - a) / a
                rows.append(_row(name, metric, a, b, change, change > tolerance and b - a >= min_ms))
        a, b = old["rps"], cur["rps"]
        if a > 0:
            change = (b - a) / a
            rows.append(_row(name, "rps", a, b, change, change < -tolerance))
        a, b = old["error_rate"] or 0.0, cur["error_rate"] or 0.0
        rows.append(_row(name, "errors", a, b, b - a, b - a > 0.01))
    return rows


def _row(name: str, metric: str, base: float, cur: float, change: float, regression: bool) -> dict[str, Any]:
    return {
        "name": name,
        "metric": metric,
        "baseline": base,
        "current": cur,
        "change": change,
        "regression": regression,
    }
