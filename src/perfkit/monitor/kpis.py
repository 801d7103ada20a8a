"""KPIs from a window of measurements (a snapshot delta): requests, database, cache, jobs.

Percentiles come from the fixed histogram buckets, interpolated as Prometheus' `histogram_quantile`
does, so they are estimates within one bucket, clamped to the smallest and largest value observed (an
interpolated p99 never exceeds the slowest request); averages and rates are exact.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from perfkit.metrics import LATENCY_BUCKETS, bucket_quantile, span
from perfkit.monitor.snapshots import buckets, extremes, rows

REQUESTS = "http_request_duration_seconds"
REALTIME_LAG = "realtime_lag_seconds"


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 2)


def _latency(
    hist_rows: list[list[float]],
    bounds: tuple[float, ...],
    seconds: float,
    observed: tuple[float, float] | None,
) -> dict[str, Any]:
    count = sum(sum(r[:-1]) for r in hist_rows)
    total = sum(r[-1] for r in hist_rows)
    return {
        "requests": int(count),
        "throughput_rps": round(count / seconds, 3) if seconds > 0 else 0.0,
        "avg_ms": _ms(total / count) if count else None,
        "p50_ms": _ms(bucket_quantile(0.50, bounds, hist_rows, observed)),
        "p95_ms": _ms(bucket_quantile(0.95, bounds, hist_rows, observed)),
        "p99_ms": _ms(bucket_quantile(0.99, bounds, hist_rows, observed)),
    }


def per_method(window: Mapping[str, Any], name: str) -> dict[str, float]:
    """A counter labelled (method, route) as {"METHOD /template": value}.

    Series of the older route-only labelling (a store written by an earlier release) are left out: their
    counts cannot be split by method, and dividing them by one method's requests is what went wrong.
    """
    out: dict[str, float] = {}
    for labels, value in rows(window, name):
        if len(labels) == 2:
            key = f"{labels[0]} {labels[1]}"
            out[key] = out.get(key, 0.0) + value
    return out


def requests(window: Mapping[str, Any], seconds: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """(overall, per route) request KPIs; a route key is "METHOD /template"."""
    bounds = buckets(window, REQUESTS) or LATENCY_BUCKETS
    series = rows(window, REQUESTS)
    seen = extremes(window, REQUESTS)
    per_route: dict[str, list[tuple[str, list[float], list[float] | None]]] = {}
    for (method, route, status), row in series:
        per_route.setdefault(f"{method} {route}", []).append((status, row, seen.get((method, route, status))))
    db_queries = per_method(window, "http_db_queries_total")
    db_seconds = per_method(window, "http_db_seconds_total")

    def kpis(items: list[tuple[str, list[float], list[float] | None]], route: str | None) -> dict[str, Any]:
        out = _latency([r for _, r, _ in items], bounds, seconds, span(e for _, _, e in items))
        errors = sum(sum(r[:-1]) for status, r, _ in items if status == "5xx")
        n = out["requests"]
        out["errors"] = int(errors)
        out["error_rate"] = round(errors / n, 5) if n else None
        if route is not None:
            queries, db_time = db_queries.get(route, 0.0), db_seconds.get(route, 0.0)
            out["db_queries_per_request"] = round(queries / n, 2) if n else None
            out["db_ms_per_request"] = round(db_time / n * 1000, 2) if n else None
        return out

    routes = {}
    for key, items in sorted(per_route.items()):
        routes[key] = kpis(items, key)  # the db counters are keyed "METHOD /template" as well
    overall = kpis([item for items in per_route.values() for item in items], None)
    total_queries = sum(db_queries.values())
    overall["db_queries_per_request"] = (
        round(total_queries / overall["requests"], 2) if overall["requests"] else None
    )
    return overall, routes


def database(window: Mapping[str, Any]) -> dict[str, Any]:
    bounds = buckets(window, "db_query_duration_seconds") or LATENCY_BUCKETS
    series = rows(window, "db_query_duration_seconds")
    hist = [r for _, r in series]
    seen = extremes(window, "db_query_duration_seconds")
    observed = span(seen.get(labels) for labels, _ in series)
    count = sum(sum(r[:-1]) for r in hist)
    slow = sum(v for _, v in rows(window, "db_slow_queries_total"))
    nplusone = sum(v for _, v in rows(window, "db_nplusone_total"))
    return {
        "queries": int(count),
        "avg_ms": _ms(sum(r[-1] for r in hist) / count) if count else None,
        "p95_ms": _ms(bucket_quantile(0.95, bounds, hist, observed)),
        "slow_queries": int(slow),
        "n_plus_one": int(nplusone),
    }


def cache(window: Mapping[str, Any]) -> dict[str, Any]:
    """Hit ratio overall and per namespace: a hit in any tier is a hit, a miss is a miss in the last tier."""
    counts: dict[str, dict[tuple[str, str, str], float]] = {}
    for (namespace, tier, op, outcome), value in rows(window, "cache_operations_total"):
        counts.setdefault(namespace, {})[tier, op, outcome] = value
    namespaces = {}
    hits_all = misses_all = 0.0
    for namespace, c in sorted(counts.items()):
        last = "l2" if any(t == "l2" for t, _, _ in c) else "l1"
        hits = sum(v for (_, op, outcome), v in c.items() if op == "get" and outcome == "hit")
        misses = sum(v for (t, op, o), v in c.items() if t == last and op == "get" and o in ("miss", "error"))
        errors = sum(v for (_, _, o), v in c.items() if o == "error")
        hits_all, misses_all = hits_all + hits, misses_all + misses
        total = hits + misses
        namespaces[namespace] = {
            "hits": int(hits),
            "misses": int(misses),
            "errors": int(errors),
            "hit_ratio": round(hits / total, 4) if total else None,
        }
    total = hits_all + misses_all
    return {
        "hits": int(hits_all),
        "misses": int(misses_all),
        "hit_ratio": round(hits_all / total, 4) if total else None,
        "namespaces": namespaces,
    }


def jobs(window: Mapping[str, Any]) -> dict[str, Any]:
    events: dict[str, dict[str, float]] = {}
    for (queue, event), value in rows(window, "jobs_events_total"):
        events.setdefault(queue, {})[event] = value
    wait = {labels[0]: r for labels, r in rows(window, "jobs_wait_seconds")}
    run: dict[str, list[list[float]]] = {}
    run_seen: dict[str, list[list[float] | None]] = {}
    run_extremes, wait_extremes = extremes(window, "jobs_run_seconds"), extremes(window, "jobs_wait_seconds")
    for (queue, task), r in rows(window, "jobs_run_seconds"):
        run.setdefault(queue, []).append(r)
        run_seen.setdefault(queue, []).append(run_extremes.get((queue, task)))
    wait_bounds, run_bounds = buckets(window, "jobs_wait_seconds"), buckets(window, "jobs_run_seconds")
    queues: dict[str, dict[str, Any]] = {}
    for queue in sorted(set(events) | set(wait) | set(run)):
        e = events.get(queue, {})
        attempts = e.get("succeeded", 0.0) + e.get("failed", 0.0)
        queues[queue] = {
            "enqueued": int(e.get("enqueued", 0)),
            "succeeded": int(e.get("succeeded", 0)),
            "failed": int(e.get("failed", 0)),
            "dead": int(e.get("dead", 0)),
            "cancelled": int(e.get("cancelled", 0)),
            "failure_rate": round(e.get("failed", 0.0) / attempts, 4) if attempts else None,
            "wait_p95_ms": _ms(
                bucket_quantile(0.95, wait_bounds, [wait[queue]], span([wait_extremes.get((queue,))]))
            )
            if queue in wait
            else None,
            "run_p95_ms": _ms(
                bucket_quantile(0.95, run_bounds, run.get(queue, []), span(run_seen.get(queue, [])))
            ),
        }
    succeeded = sum(q["succeeded"] for q in queues.values())
    failed = sum(q["failed"] for q in queues.values())
    return {
        "succeeded": succeeded,
        "failed": failed,
        "failure_rate": round(failed / (succeeded + failed), 4) if succeeded + failed else None,
        "queues": queues,
    }


def rate_limiter(window: Mapping[str, Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for (_cls, decision), value in rows(window, "ratelimit_decisions_total"):
        out[decision] = out.get(decision, 0) + int(value)
    return out


def realtime(window: Mapping[str, Any], seconds: float) -> dict[str, Any]:
    """The real-time hub's KPIs of a window: messages sent to clients per second, publish-to-send lag."""
    sent = sum(v for _, v in rows(window, "realtime_messages_out_total"))
    lag = [row for _, row in rows(window, REALTIME_LAG)]
    bounds = buckets(window, REALTIME_LAG) or LATENCY_BUCKETS
    seen = span(extremes(window, REALTIME_LAG).values()) if lag else None
    return {
        "messages_out_per_s": round(sent / seconds, 3) if seconds > 0 else 0.0,
        "lag_p50_ms": _ms(bucket_quantile(0.50, bounds, lag, seen)) if lag else None,
        "lag_p99_ms": _ms(bucket_quantile(0.99, bounds, lag, seen)) if lag else None,
    }
