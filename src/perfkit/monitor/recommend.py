"""Recommendations derived from what was measured, ranked by impact.

Every recommendation names its evidence (route, namespace, relationship, table) and a fix. Rank:
`impact = base + magnitude`, base 100 for critical, 50 for warning, 10 for info, magnitude (< 50) how far
over its threshold the measurement is, scaled by the share of traffic where that applies.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from perfkit.monitor.config import Budgets

_BASE = {"critical": 100.0, "warning": 50.0, "info": 10.0}


def figure(value: float, budget: float) -> str:
    """`value` with as few decimals (0 to 3) as keep it distinguishable from `budget`.

    A measurement over its budget never prints as the budget: 10.48 against 10 is "10.5", not "10".
    """
    for decimals in range(4):
        text = f"{value:.{decimals}f}"
        if text != f"{budget:.{decimals}f}" or float(value) == float(budget):
            return text
    return text


# fixes that are query methods of their own (Django's QuerySet), not SQLAlchemy loader options
_METHODS = ("select_related(", "prefetch_related(")


def applied_fix(fix: str) -> str:
    """How a finding's fix is applied to the query: `.options(selectinload(...))` for SQLAlchemy's
    loader options, `.select_related("organization")` for Django's QuerySet methods (or any fix that
    already starts with a dot)."""
    return "." + fix.lstrip(".") if fix.startswith(".") or fix.startswith(_METHODS) else f".options({fix})"


def _rec(
    kind: str, severity: str, message: str, fix: str, magnitude: float, **evidence: Any
) -> dict[str, Any]:
    impact = _BASE[severity] + max(0.0, min(49.9, magnitude))
    return {
        "kind": kind,
        "severity": severity,
        "message": message,
        "fix": fix,
        "impact": round(impact, 1),
        "evidence": evidence,
    }


def _routes(routes: dict[str, Any], total: int, b: Budgets) -> list[dict[str, Any]]:
    out = []
    for key, r in routes.items():
        n = r["requests"]
        share = n / total if total else 0.0
        p95, rate, queries = r.get("p95_ms"), r.get("error_rate"), r.get("db_queries_per_request")
        if p95 is not None and p95 > b.p95_ms:
            ratio = p95 / b.p95_ms
            out.append(
                _rec(
                    "latency",
                    "critical" if ratio >= 2 else "warning",
                    f"{key}: p95 {figure(p95, b.p95_ms)} ms over the {b.p95_ms:g} ms budget",
                    "profile the route: see its DB time per request and slow queries below",
                    (ratio - 1) * 25 * (0.5 + share),
                    route=key,
                    p95_ms=p95,
                    requests=n,
                )
            )
        if rate is not None and rate > b.error_rate:
            out.append(
                _rec(
                    "errors",
                    "critical",
                    f"{key}: {rate * 100:.1f} % of requests fail (budget {b.error_rate * 100:g} %)",
                    "look at the application logs for this route's 5xx responses",
                    rate * 100 * (0.5 + share),
                    route=key,
                    error_rate=rate,
                    errors=r.get("errors"),
                )
            )
        if queries is not None and queries > b.queries_per_request:
            out.append(
                _rec(
                    "queries",
                    "warning",
                    f"{key} runs {figure(queries, b.queries_per_request)} queries per request "
                    f"(budget {b.queries_per_request:g})",
                    "batch the lookups (one aggregate query, IN (...), or eager loading)",
                    queries / b.queries_per_request * 5 * (0.5 + share),
                    route=key,
                    queries_per_request=queries,
                )
            )
    return out


def _findings(groups: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """From the grouped findings (`findings.grouped`): one recommendation per relationship, per index."""
    out = []
    for g in groups.get("n_plus_one", []):
        rel, fix = g["relationship"], g.get("fix") or "selectinload"
        routes = sorted(r for r in g.get("routes", {}) if r != "-")
        out.append(
            _rec(
                "n_plus_one",
                "warning",
                f"N+1 on {rel}: {fix.lstrip('.').split('(')[0]}",
                applied_fix(fix),
                g["count"] * 2,
                relationship=rel,
                occurrences=g["count"],
                routes=routes,
            )
        )
    for s in groups.get("index_suggestions", []):
        table, columns, sql = s.get("table", ""), list(s.get("columns", ())), s.get("sql", "")
        if s.get("reason") == "order_by":  # ORDER BY ... LIMIT that read and sorted the whole table
            message = (
                f"full scan and sort of {table} for ORDER BY {', '.join(s.get('order_by', columns))} LIMIT"
            )
        else:
            message = f"sequential scan on {table}.{', '.join(columns)}"
        out.append(
            _rec(
                "index",
                "warning",
                f"{message}: add an index",
                sql,
                10,
                table=table,
                columns=columns,
                plan=s.get("evidence"),
            )
        )
    repeated: dict[str, int] = {}
    for g in groups.get("repeated_queries", []):
        for route, count in g.get("routes", {}).items():
            repeated[route] = repeated.get(route, 0) + count
    for route, count in repeated.items():
        out.append(
            _rec(
                "repeated_query",
                "info",
                f"{route}: the same query runs several times per request",
                "load it once per request and reuse the result",
                count,
                route=route,
            )
        )
    return out


def recommend(
    overall: dict[str, Any],
    routes: dict[str, Any],
    database: dict[str, Any],
    cache: dict[str, Any],
    jobs: dict[str, Any],
    system: dict[str, float],
    uncompressed: dict[str, int],
    groups: dict[str, list[dict[str, Any]]],
    regressions: list[dict[str, Any]],
    b: Budgets,
    vitals: Iterable[tuple[str, str, str, float, dict[str, Any]]] = (),
) -> list[dict[str, Any]]:
    """`vitals`: (severity, message, fix, magnitude, evidence) of the pages whose web vitals are not
    good (`perfkit.monitor.rum.summary.advice`)."""
    out = _routes(routes, overall["requests"], b) + _findings(groups)
    out += [_rec("web_vitals", sev, msg, fix, mag, **ev) for sev, msg, fix, mag, ev in vitals]
    p95 = database.get("p95_ms")
    if p95 is not None and p95 > b.db_query_ms:
        out.append(
            _rec(
                "db_latency",
                "warning",
                f"SQL p95 {figure(p95, b.db_query_ms)} ms over the {b.db_query_ms:g} ms budget",
                "see the slow queries and their EXPLAIN",
                p95 / b.db_query_ms * 5,
                p95_ms=p95,
            )
        )
    for ns, c in cache["namespaces"].items():
        ratio = c["hit_ratio"]
        if ratio is not None and ratio < b.cache_hit_ratio and c["hits"] + c["misses"] >= 10:
            out.append(
                _rec(
                    "cache",
                    "warning",
                    f"cache hit ratio {ratio * 100:.0f} % in namespace {ns}",
                    "raise the TTL, cache a coarser key, or warm the entries that miss",
                    (b.cache_hit_ratio - ratio) * 50,
                    namespace=ns,
                    hit_ratio=ratio,
                )
            )
    for route, count in uncompressed.items():
        out.append(
            _rec(
                "compression",
                "warning",
                f"{route}: {count} responses over {b.uncompressed_bytes} B sent uncompressed",
                "enable compression for this route (CompressionMiddleware)",
                count / 10,
                route=route,
                responses=count,
            )
        )
    for queue, q in jobs["queues"].items():
        rate = q["failure_rate"]
        if rate is not None and rate > b.job_failure_rate:
            out.append(
                _rec(
                    "jobs",
                    "warning",
                    f"jobs in queue {queue} fail {rate * 100:.0f} % of attempts",
                    "see the failed jobs' errors on the dashboard",
                    rate * 50,
                    queue=queue,
                )
            )
    for key, label in (("cpu_percent", "CPU"), ("memory_percent", "memory"), ("disk_percent", "disk")):
        value, budget = system.get(key), getattr(b, key)
        if value is not None and value > budget:
            out.append(
                _rec(
                    "system",
                    "warning",
                    f"{label} at {figure(value, budget)} % (budget {budget:g} %)",
                    "add capacity or find what consumes it",
                    value - budget,
                    resource=label,
                )
            )
    for r in regressions:
        out.append(
            _rec(
                "regression",
                "warning",
                r["message"],
                "compare with the baseline's deploy",
                r.get("change", 0.0) * 20,
                **{k: v for k, v in r.items() if k != "message"},
            )
        )
    out.sort(key=lambda r: r["impact"], reverse=True)
    return out
