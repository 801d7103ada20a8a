"""Budgets against KPIs, and the 0-100 performance score.

Each budgeted KPI with a measurement gets a score: 100 within budget, falling linearly to 0 at twice the
budget (a ceiling such as p95: `r = value / budget`; a floor such as the cache hit ratio:
`r = budget / value`; score = 100 x clamp(2 - r, 0, 1) when r > 1). The overall score is the
weighted mean of the KPIs that have data, with weights: p95 20, error rate 20, average 15,
DB query 10, cache hit ratio 10, CPU 7, memory 7, disk 6, job failure rate 5, and from real users' page
views (p75) LCP 10, INP 10, CLS 10, FCP 5, TTFB 5. No data at all: None.
"""

from __future__ import annotations

from typing import Any

from perfkit.monitor.config import Budgets

# (kpi, budget attribute, unit, "max" = value must stay below, "min" = above, weight)
_BUDGETS = (
    ("p95_ms", "p95_ms", "ms", "max", 20),
    ("error_rate", "error_rate", "ratio", "max", 20),
    ("avg_ms", "avg_ms", "ms", "max", 15),
    ("db_query_p95_ms", "db_query_ms", "ms", "max", 10),
    ("cache_hit_ratio", "cache_hit_ratio", "ratio", "min", 10),
    ("cpu_percent", "cpu_percent", "%", "max", 7),
    ("memory_percent", "memory_percent", "%", "max", 7),
    ("disk_percent", "disk_percent", "%", "max", 6),
    ("job_failure_rate", "job_failure_rate", "ratio", "max", 5),
    # Core Web Vitals from real users (perfkit.monitor.rum): p75 over every page view of the window
    ("lcp_p75_ms", "lcp_ms", "ms", "max", 10),
    ("inp_p75_ms", "inp_ms", "ms", "max", 10),
    ("cls_p75", "cls", "", "max", 10),
    ("fcp_p75_ms", "fcp_ms", "ms", "max", 5),
    ("ttfb_p75_ms", "ttfb_ms", "ms", "max", 5),
)


def kpi_score(value: float, budget: float, direction: str) -> float:
    if direction == "max":
        ratio = value / budget if budget > 0 else (0.0 if value <= 0 else float("inf"))
    else:
        ratio = budget / value if value > 0 else (0.0 if budget <= 0 else float("inf"))
    if ratio <= 1:
        return 100.0
    return max(0.0, min(1.0, 2.0 - ratio)) * 100.0


def check_budgets(values: dict[str, float | None], budgets: Budgets) -> list[dict[str, Any]]:
    out = []
    for kpi, attr, unit, direction, weight in _BUDGETS:
        value = values.get(kpi)
        budget = float(getattr(budgets, attr))
        entry: dict[str, Any] = {
            "kpi": kpi,
            "value": value,
            "budget": budget,
            "unit": unit,
            "direction": direction,
            "weight": weight,
        }
        if value is None:
            entry.update(ok=None, score=None)
        else:
            entry["score"] = round(kpi_score(value, budget, direction), 1)
            entry["ok"] = value <= budget if direction == "max" else value >= budget
        out.append(entry)
    return out


def overall_score(checks: list[dict[str, Any]]) -> int | None:
    scored = [c for c in checks if c["score"] is not None]
    weight = sum(c["weight"] for c in scored)
    if not weight:
        return None
    total = sum(float(c["score"]) * float(c["weight"]) for c in scored)
    result: int = round(total / float(weight))
    return result
