"""Findings grouped: one row per statement shape, relationship, suggested index or route, not per event.

Counts, total and p95 time of slow queries come from the `db_slow_query_duration_seconds{shape,route}`
histogram and N+1 counts from `db_nplusone_total{relationship,route}`: counters, so they are exact over
the window and every process, however many findings the rings kept. What only a finding carries (the
statement text, its EXPLAIN, the fix, first and last seen) comes from the findings kept in the window:
the last `ring_size` (500) per kind and process, so `first_seen` is the first one still kept.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from perfkit.db.statements import shape, shape_id
from perfkit.metrics import LATENCY_BUCKETS, bucket_quantile, span
from perfkit.monitor.snapshots import buckets, extremes, rows

SLOW_QUERIES = "db_slow_query_duration_seconds"
NPLUSONE = "db_nplusone_total"
_NO_ROUTE = "-"


def _p95(values: list[float]) -> float | None:
    """Nearest-rank 95th percentile of exact values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def _route(finding: Mapping[str, Any]) -> str:
    return str(finding.get("route") or _NO_ROUTE)


def _seen(items: list[dict[str, Any]]) -> dict[str, Any]:
    times = [float(f.get("at", 0.0)) for f in items]
    return {"first_seen": min(times) if times else None, "last_seen": max(times) if times else None}


def _by(
    items: Iterable[dict[str, Any]], key: Callable[[dict[str, Any]], str]
) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        out.setdefault(key(item), []).append(item)
    return out


def _shape_of(finding: Mapping[str, Any]) -> str:
    """The finding's shape id (findings of older releases carry only the statement)."""
    sid = finding.get("shape_id")
    return str(sid) if sid else shape_id(shape(str(finding.get("statement", ""))))


def slow_queries(
    window: Mapping[str, Any], items: list[dict[str, Any]], plans: Iterable[Mapping[str, Any]] = ()
) -> list[dict[str, Any]]:
    """Slow statements per shape, by total time: count, total, average and p95 ms, routes (with counts),
    first and last seen, an example statement and the shape's EXPLAIN (captured once per shape)."""
    bounds = buckets(window, SLOW_QUERIES) or LATENCY_BUCKETS
    seen = extremes(window, SLOW_QUERIES)
    measured: dict[str, list[tuple[str, list[float], list[float] | None]]] = {}
    for (sid, route), row in rows(window, SLOW_QUERIES):
        measured.setdefault(sid, []).append((route, row, seen.get((sid, route))))
    found = _by(items, _shape_of)
    explained = {str(p["shape_id"]): p for p in plans if p.get("shape_id") and p.get("explain")}
    groups = []
    for sid in set(measured) | set(found):
        kept = sorted(found.get(sid, []), key=lambda f: f.get("at", 0.0))
        durations = [float(f.get("duration_ms", 0.0)) for f in kept]
        group: dict[str, Any] = {"shape_id": sid}
        series = measured.get(sid)
        if series:
            hist = [row for _, row, _ in series]
            count = sum(sum(row[:-1]) for row in hist)
            routes = {route: int(sum(row[:-1])) for route, row, _ in series}
            p95 = bucket_quantile(0.95, bounds, hist, span(e for _, _, e in series))
            group.update(
                count=int(count),
                total_ms=round(sum(row[-1] for row in hist) * 1000, 2),
                p95_ms=None if p95 is None else round(p95 * 1000, 2),
                routes=routes,
            )
        else:  # findings from a process that kept no histogram: counted from the findings themselves
            group.update(
                count=len(kept),
                total_ms=round(sum(durations), 2),
                p95_ms=_p95(durations),
                routes={route: len(fs) for route, fs in _by(kept, _route).items()},
            )
        group["avg_ms"] = round(group["total_ms"] / group["count"], 2) if group["count"] else None
        group["max_ms"] = max(durations) if durations else None
        group.update(_seen(kept))
        latest, plan = (kept[-1] if kept else {}), explained.get(sid, {})
        group["shape"] = latest.get("shape") or plan.get("shape")
        group["statement"] = latest.get("statement")
        if "parameters" in latest:
            group["parameters"] = latest["parameters"]
        explain = plan.get("explain") or next((f["explain"] for f in kept if f.get("explain")), None)
        if explain is not None:
            group["explain"] = explain
        groups.append(group)
    groups.sort(key=lambda g: (g["total_ms"], g["count"]), reverse=True)
    return groups


def n_plus_one(window: Mapping[str, Any], items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """N+1 per relationship, most requests first: requests affected, routes (with counts), the fix."""
    counted: dict[str, dict[str, int]] = {}
    for labels, value in rows(window, NPLUSONE):
        if len(labels) == 2:  # (relationship, route); older releases counted per relationship only
            counted.setdefault(labels[0], {})[labels[1]] = int(value)
    found = _by(items, lambda f: str(f.get("relationship", "?")))
    groups = []
    for rel in set(counted) | set(found):
        kept = sorted(found.get(rel, []), key=lambda f: f.get("at", 0.0))
        routes = counted.get(rel) or {route: len(fs) for route, fs in _by(kept, _route).items()}
        latest = kept[-1] if kept else {}
        groups.append({
            "relationship": rel,
            "count": sum(routes.values()),
            "routes": routes,
            "fix": latest.get("fix"),
            "message": latest.get("message") or f"N+1 on {rel}",
            "lazy_loads": max((int(f.get("count", 0)) for f in kept), default=None),
            **_seen(kept),
        })  # fmt: skip
    groups.sort(key=lambda g: g["count"], reverse=True)
    return groups


def index_suggestions(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per suggested index (its CREATE INDEX), with the statements and plans that led to it."""
    groups = []
    for sql, kept in _by(items, lambda f: str(f.get("sql", ""))).items():
        latest = max(kept, key=lambda f: f.get("at", 0.0))
        group = {k: v for k, v in latest.items() if k not in ("at", "statement")}
        statements = sorted({str(f["statement"]) for f in kept if f.get("statement")})
        group.update(sql=sql, count=len(kept), statements=statements[:5], **_seen(kept))
        groups.append(group)
    groups.sort(key=lambda g: g["count"], reverse=True)
    return groups


def repeated_queries(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Statements run several times with the same parameters in one request, per shape."""
    groups = []
    for sid, kept in _by(items, _shape_of).items():
        kept.sort(key=lambda f: f.get("at", 0.0))
        groups.append({
            "shape_id": sid,
            "statement": kept[-1].get("statement"),
            "count": len(kept),
            "routes": {route: len(fs) for route, fs in _by(kept, _route).items()},
            "message": kept[-1].get("message"),
            **_seen(kept),
        })  # fmt: skip
    groups.sort(key=lambda g: g["count"], reverse=True)
    return groups


def slow_requests(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Slow requests per METHOD /template, by total time, with the last few request ids."""
    groups = []
    for key, kept in _by(items, lambda f: f"{f.get('method')} {f.get('route')}").items():
        kept.sort(key=lambda f: f.get("at", 0.0))
        durations = [float(f.get("duration_ms", 0.0)) for f in kept]
        groups.append({
            "route": key,
            "count": len(kept),
            "total_ms": round(sum(durations), 2),
            "p95_ms": _p95(durations),
            "max_ms": max(durations),
            "statuses": sorted({int(f.get("status", 0)) for f in kept}),
            "request_ids": [f.get("request_id") for f in kept[-5:]],
            **_seen(kept),
        })  # fmt: skip
    groups.sort(key=lambda g: g["total_ms"], reverse=True)
    return groups


def grouped(window: Mapping[str, Any], findings: Mapping[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Every kind of finding grouped, keyed as the report lists them."""
    return {
        "slow_queries": slow_queries(window, findings.get("slow_query", []), findings.get("query_plan", [])),
        "n_plus_one": n_plus_one(window, findings.get("n_plus_one", [])),
        "index_suggestions": index_suggestions(findings.get("index_suggestion", [])),
        "repeated_queries": repeated_queries(findings.get("repeated_query", [])),
        "slow_requests": slow_requests(findings.get("slow_request", [])),
    }


KINDS = {
    "slow_query": "slow_queries",
    "n_plus_one": "n_plus_one",
    "index_suggestion": "index_suggestions",
    "repeated_query": "repeated_queries",
    "slow_request": "slow_requests",
}
