"""One frame of `perfkit top`: rates and percentiles between two samples, as plain rows (no drawing).

`Frame.build(previous, current)` per app; `routes` rows are what the sort keys order. Everything is
computed with the monitor's own KPI functions (`perfkit.monitor.kpis`), over the refresh interval.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from perfkit.monitor import kpis
from perfkit.monitor.snapshots import diff, rows
from perfkit.top.source import Sample

# sort keys: (key, column title, row field); `s` cycles through them, `r` reverses
SORTS = (
    ("rps", "req/s", "rps"),
    ("p50", "p50 ms", "p50_ms"),
    ("p95", "p95 ms", "p95_ms"),
    ("p99", "p99 ms", "p99_ms"),
    ("errors", "err/s", "errors_per_s"),
    ("db", "db q/req", "db_per_request"),
    ("route", "route", "route"),
)
SORT_KEYS = tuple(key for key, _, _ in SORTS)


@dataclass
class Frame:
    app: str
    seconds: float
    overall: dict[str, Any]
    routes: list[dict[str, Any]]
    db_queries_per_s: float
    cache_hit_ratio: float | None
    realtime_connections: float | None
    queues: list[dict[str, Any]] = field(default_factory=list)
    processes: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def build(cls, previous: Sample | None, current: Sample) -> Frame:
        seconds = max(current.t - previous.t, 1e-3) if previous is not None else 0.0
        delta = diff(current.snapshot, previous.snapshot if previous is not None else current.snapshot)
        per = seconds or 1.0
        overall, routes = kpis.requests(delta, per)
        route_rows = [
            {
                "app": current.name,
                "route": key,
                "rps": round(r["requests"] / per, 2),
                "p50_ms": r["p50_ms"],
                "p95_ms": r["p95_ms"],
                "p99_ms": r["p99_ms"],
                "errors_per_s": round(r["errors"] / per, 2),
                "db_per_request": r.get("db_queries_per_request"),
            }
            for key, r in routes.items()
        ]
        jobs = kpis.jobs(delta)["queues"]
        names = sorted(set(current.queues or {}) | set(jobs))
        queues = [
            {
                "app": current.name,
                "queue": q,
                "depth": (current.queues or {}).get(q),
                "done_per_s": round(jobs.get(q, {}).get("succeeded", 0) / per, 2),
                "failed_per_s": round(jobs.get(q, {}).get("failed", 0) / per, 2),
            }
            for q in names
        ]
        connections = rows(current.snapshot, "realtime_connections")
        return cls(
            app=current.name,
            seconds=seconds,
            overall=overall,
            routes=route_rows,
            db_queries_per_s=round(kpis.database(delta)["queries"] / per, 2),
            cache_hit_ratio=kpis.cache(delta)["hit_ratio"],
            realtime_connections=sum(v for _, v in connections) if connections else None,
            queues=queues,
            processes=[{"app": current.name, **p} for p in current.processes],
        )


def sort_routes(frames: list[Frame], key: str, reverse: bool) -> list[dict[str, Any]]:
    """Every app's route rows, ordered by `key` (a SORT_KEYS entry); unknown values last."""
    field_name = next(f for k, _, f in SORTS if k == key)
    items = [r for f in frames for r in f.routes]
    if field_name == "route":
        return sorted(items, key=lambda r: (r["route"], r["app"]), reverse=reverse)
    known = sorted(
        (r for r in items if r[field_name] is not None), key=lambda r: r[field_name], reverse=not reverse
    )
    return known + [r for r in items if r[field_name] is None]
