"""The performance report: KPIs over a window against budgets, the score, and recommendations."""

from __future__ import annotations

import time
from typing import Any

from perfkit.monitor import kpis
from perfkit.monitor.config import Budgets
from perfkit.monitor.findings import grouped
from perfkit.monitor.recommend import recommend
from perfkit.monitor.rum.summary import advice, budget_values, web_vitals
from perfkit.monitor.score import check_budgets, overall_score
from perfkit.monitor.snapshots import Snapshot, rows

_SECRET_KEYS = ("parameters",)
MAX_GROUPS = 50  # per kind of finding: the groups with the most time (or count) first


def clean(finding: dict[str, Any], show_parameters: bool) -> dict[str, Any]:
    """A finding fit for a report: statement parameters only when explicitly enabled."""
    if show_parameters:
        return dict(finding)
    return {k: v for k, v in finding.items() if k not in _SECRET_KEYS}


def uncompressed(window: Snapshot) -> dict[str, int]:
    out: dict[str, int] = {}
    for (method, route), value in rows(window, "http_uncompressed_responses_total"):
        out[f"{method} {route}"] = out.get(f"{method} {route}", 0) + int(value)
    return out


def build(
    window: Snapshot,
    covered: float,
    findings: dict[str, list[dict[str, Any]]],
    system: dict[str, float],
    budgets: Budgets,
    *,
    window_s: float,
    processes: int,
    show_parameters: bool = False,
    regressions: list[dict[str, Any]] | None = None,
    queues: dict[str, Any] | None = None,
) -> dict[str, Any]:
    overall, routes = kpis.requests(window, covered)
    database, cache, jobs = kpis.database(window), kpis.cache(window), kpis.jobs(window)
    values = {
        "p95_ms": overall["p95_ms"],
        "avg_ms": overall["avg_ms"],
        "error_rate": overall["error_rate"],
        "db_query_p95_ms": database["p95_ms"],
        "cache_hit_ratio": cache["hit_ratio"],
        "cpu_percent": system.get("cpu_percent"),
        "memory_percent": system.get("memory_percent"),
        "disk_percent": system.get("disk_percent"),
        "job_failure_rate": jobs["failure_rate"],
    }
    vitals = web_vitals(window)
    values.update(budget_values(vitals))
    checks = check_budgets(values, budgets)
    for check in checks:  # a web vital's budget also carries its Core Web Vitals rating
        judged = vitals["overall"].get(check["kpi"].split("_")[0].upper())
        if judged is not None and check["kpi"].endswith(("_p75", "_p75_ms")):
            check["rating"] = judged["rating"]
    for route in routes.values():
        route["p95_ok"] = None if route["p95_ms"] is None else route["p95_ms"] <= budgets.p95_ms
        route["error_rate_ok"] = (
            None if route["error_rate"] is None else route["error_rate"] <= budgets.error_rate
        )
    compressed = uncompressed(window)
    safe = {kind: [clean(f, show_parameters) for f in items] for kind, items in findings.items()}
    groups = grouped(window, safe)
    return {
        "generated_at": time.time(),
        "window_s": window_s,
        "covered_s": round(covered, 1),
        "processes": processes,
        "score": overall_score(checks),
        "budgets": checks,
        "kpis": {
            "requests": overall,
            "database": database,
            "cache": cache,
            "jobs": jobs,
            "rate_limiter": kpis.rate_limiter(window),
            "system": system,
            **({"queues": queues} if queues is not None else {}),
        },
        "routes": routes,
        "findings": {
            **{kind: items[:MAX_GROUPS] for kind, items in groups.items()},
            "uncompressed": compressed,
        },
        "web_vitals": vitals,
        "regressions": regressions or [],
        "recommendations": recommend(
            overall,
            routes,
            database,
            cache,
            jobs,
            system,
            compressed,
            groups,
            regressions or [],
            budgets,
            advice(vitals),
        ),
    }
