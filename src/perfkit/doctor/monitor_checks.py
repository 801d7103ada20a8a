"""Checks on what the monitor knows: health, its own protection, the report's KPIs, findings, pools.

Each reads `Evidence` (`/perf/health`, `/perf/health/ready`, `/perf/metrics`, `/perf/report`); a check
whose data needs the token answers `skip` without one (the monitor refuses, rightly, to tell).
"""

from __future__ import annotations

import re
from typing import Any

from perfkit.doctor.probe import Evidence
from perfkit.doctor.result import Result

# one ping of Redis / the database from the app, best of three readiness runs: in one network zone a
# round trip is well under a millisecond, so these leave room for a busy host and the thread hop
LATENCY_WARN_MS, LATENCY_FAIL_MS = 50.0, 200.0
QUEUE_WARN_S, QUEUE_FAIL_S = 60.0, 600.0  # age of the oldest ready job
NEEDS_TOKEN = "needs the monitor token (--token or PERFKIT_MONITOR_TOKEN)"  # noqa: S105  # a message
_SAMPLE = re.compile(r"^(perfkit_[a-z_]+)(?:\{[^}]*\})? ([0-9.eE+-]+)$", re.MULTILINE)


def _report(ev: Evidence) -> dict[str, Any] | None:
    if ev.report is None or ev.report.status != 200:
        return None
    data = ev.report.json()
    return data if isinstance(data, dict) else None


def _no_report(ev: Evidence, id: str, title: str) -> Result:
    if not ev.token_given and ev.report is None:
        return Result(id, title, "skip", f"the report {NEEDS_TOKEN}")
    status = "no answer" if ev.report is None else f"{ev.report.status}"
    return Result(id, title, "skip", f"no report from {ev.prefix}/report ({status})")


def _ready_checks(ev: Evidence, seen: Any = None) -> dict[str, Any]:
    seen = ev.ready if seen is None else seen
    body = seen.json() if seen is not None else None
    checks = body.get("checks") if isinstance(body, dict) else None
    return checks if isinstance(checks, dict) else {}


def _best_latency(ev: Evidence, name: str) -> float:
    runs = [_ready_checks(ev, s).get(name, {}) for s in [ev.ready, *ev.ready_again]]
    return min(float(r.get("latency_ms", float("inf"))) for r in runs)


def health_live(ev: Evidence) -> Result:
    title = "Health: live"
    fix = "perfkit.instrument(app) mounts the monitor under /perf (or give --prefix)"
    if ev.live is None:
        return Result("health_live", title, "fail", ev.errors.get("health", "no answer"), fix)
    if ev.live.status == 200:
        return Result(
            "health_live", title, "pass", f"{ev.prefix}/health answered in {ev.live.seconds * 1000:.0f} ms"
        )
    return Result("health_live", title, "fail", f"{ev.prefix}/health answered {ev.live.status}", fix)


def health_ready(ev: Evidence) -> Result:
    title = "Health: ready"
    if ev.ready is None:
        return Result("health_ready", title, "fail", ev.errors.get("ready", "no answer"), "see health_live")
    if ev.ready.status == 401:
        return Result("health_ready", title, "skip", f"{ev.prefix}/health/ready {NEEDS_TOKEN}")
    checks = _ready_checks(ev)
    if ev.ready.status == 200:
        warned = [n for n, c in checks.items() if c.get("status") == "warn"]
        extra = f"; warnings: {', '.join(warned)}" if warned else ""
        return Result("health_ready", title, "pass", f"ready ({', '.join(checks) or 'no checks'}){extra}")
    failing = [f"{n}: {c.get('message', '')}" for n, c in checks.items() if c.get("status") == "fail"]
    return Result(
        "health_ready", title, "fail", f"{ev.ready.status}: " + ("; ".join(failing) or "not ready"),
        "fix the failing dependency; a load balancer stops sending traffic while readiness fails",
    )  # fmt: skip


def metrics_protected(ev: Evidence) -> Result:
    title = "Metrics protected"
    seen = ev.metrics_open
    if seen is None or seen.status == 404:
        return Result("metrics_protected", title, "skip", f"no {ev.prefix}/metrics endpoint")
    if seen.status == 401:
        return Result(
            "metrics_protected", title, "pass", f"{ev.prefix}/metrics answers 401 without the token"
        )
    return Result(
        "metrics_protected", title, "fail", f"{ev.prefix}/metrics answered {seen.status} to anyone",
        "set PERFKIT_MONITOR_TOKEN (and leave PERFKIT_MONITOR_OPEN unset); give Prometheus the bearer token",
    )  # fmt: skip


def slow_routes(ev: Evidence) -> Result:
    title, report = "Slow routes", _report(ev)
    if report is None:
        return _no_report(ev, "slow_routes", title)
    budget = next((b["budget"] for b in report.get("budgets", []) if b["kpi"] == "p95_ms"), None)
    slow = sorted(
        ((k, r["p95_ms"]) for k, r in report.get("routes", {}).items() if r.get("p95_ok") is False),
        key=lambda kv: -kv[1],
    )
    if not report.get("routes"):
        return Result("slow_routes", title, "skip", "no request in the report's window")
    if not slow:
        return Result(
            "slow_routes", title, "pass", f"{len(report['routes'])} routes within p95 {budget:g} ms"
        )
    where = ", ".join(f"{k} p95 {v:.0f} ms" for k, v in slow[:3])
    return Result(
        "slow_routes", title, "fail", f"{len(slow)} over the p95 budget of {budget:g} ms: {where}",
        f"open {ev.prefix}/ (the dashboard) for their slow queries and N+1 findings; "
        "cache them with Rule(cache_ttl=...)",
    )  # fmt: skip


def n_plus_one(ev: Evidence) -> Result:
    title, report = "N+1 queries", _report(ev)
    if report is None:
        return _no_report(ev, "n_plus_one", title)
    groups = report.get("findings", {}).get("n_plus_one", [])
    if not groups:
        return Result("n_plus_one", title, "pass", "no N+1 pattern seen in the window")
    first = groups[0]
    where = first.get("relationship") or first.get("route") or first.get("statement", "")
    return Result(
        "n_plus_one", title, "fail", f"{len(groups)} N+1 pattern(s); first: {where}",
        first.get("fix")
        or "load the relationship eagerly: selectinload() / joinedload() (Django: prefetch_related)",
    )  # fmt: skip


def _metric(ev: Evidence, name: str) -> float | None:
    if ev.metrics is None or ev.metrics.status != 200:
        return None
    values = [float(v) for n, v in _SAMPLE.findall(ev.metrics.body.decode("utf-8", "replace")) if n == name]
    return sum(values) if values else None


def db_pool(ev: Evidence) -> Result:
    title = "Connection pool settings"
    size, used, overflow = (_metric(ev, f"perfkit_db_pool_{k}") for k in ("size", "checked_out", "overflow"))
    if size is None:
        why = NEEDS_TOKEN if not ev.token_given and ev.metrics is None else "no engine given to instrument()"
        return Result("db_pool", title, "skip", f"no pool figures ({why})")
    overflow = max(0.0, overflow or 0.0)  # (older servers exported SQLAlchemy's overflow(), negative)
    detail = f"size {size:g}, checked out {used or 0:g}, overflow in use {overflow:g}"
    if size <= 1:
        return Result(
            "db_pool", title, "warn", detail, "a pool of one serialises every request: pool_size=5 or more"
        )
    if used is not None and used >= size and overflow > 0:
        return Result(
            "db_pool", title, "warn", detail + ": the pool is exhausted",
            "raise pool_size / max_overflow, or shorten what holds a connection",
        )  # fmt: skip
    return Result("db_pool", title, "pass", detail)


def job_workers(ev: Evidence) -> Result:
    title, report = "Job workers alive", _report(ev)
    if report is None:
        return _no_report(ev, "job_workers", title)
    queues, jobs = report.get("kpis", {}).get("queues"), report.get("kpis", {}).get("jobs", {})
    if queues is None:
        return Result("job_workers", title, "skip", "no job queue given to instrument()")
    ran = int(jobs.get("succeeded", 0)) + int(jobs.get("failed", 0))
    ready = int(queues.get("total", 0))
    if ready and not ran and (queues.get("oldest_age_s") or 0) > QUEUE_WARN_S:
        return Result(
            "job_workers", title, "fail",
            f"{ready} job(s) ready and none ran in the window: no worker is taking them",
            "start workers: perfkit worker MODULE:QUEUE (one per core is a good start)",
        )  # fmt: skip
    return Result("job_workers", title, "pass", f"{ran} job(s) ran in the window, {ready} ready")


def queues_draining(ev: Evidence) -> Result:
    title, report = "Queues draining", _report(ev)
    if report is None:
        return _no_report(ev, "queues_draining", title)
    queues = report.get("kpis", {}).get("queues")
    if queues is None:
        return Result("queues_draining", title, "skip", "no job queue given to instrument()")
    age = queues.get("oldest_age_s")
    detail = f"{queues.get('total', 0)} ready; oldest waited {0 if age is None else age:.0f} s"
    fix = "add workers or split the slow job type onto its own queue"
    if age is not None and age > QUEUE_FAIL_S:
        return Result("queues_draining", title, "fail", detail, fix)
    if age is not None and age > QUEUE_WARN_S:
        return Result("queues_draining", title, "warn", detail, fix)
    return Result("queues_draining", title, "pass", detail)


def _latency(ev: Evidence, id: str, title: str, names: tuple[str, ...], word: str) -> Result:
    if ev.ready is not None and ev.ready.status == 401:
        return Result(id, title, "skip", f"readiness {NEEDS_TOKEN}")
    found = [
        (n, c) for n, c in _ready_checks(ev).items() if n in names and word in c.get("message", "").lower()
    ]
    if not found:
        return Result(id, title, "skip", f"no {word} behind the app's readiness checks")
    name, check = max(found, key=lambda nc: _best_latency(ev, nc[0]))
    ms = _best_latency(ev, name)
    runs = 1 + len(ev.ready_again)
    detail = f"{name}: {ms:.1f} ms for one round trip, best of {runs} ({check.get('message', '')})"
    fix = f"keep {word} in the app's network zone; check its CPU and the connection pool"
    if check.get("status") == "fail" or ms > LATENCY_FAIL_MS:
        return Result(id, title, "fail", detail, fix)
    if ms > LATENCY_WARN_MS:
        return Result(id, title, "warn", detail, fix)
    return Result(id, title, "pass", detail)


def redis_latency(ev: Evidence) -> Result:
    return _latency(ev, "redis_latency", "Redis latency", ("cache", "monitor_store"), "redis")


def database_latency(ev: Evidence) -> Result:
    return _latency(ev, "database_latency", "PostgreSQL latency", ("database",), "postgresql")


def _budget(ev: Evidence, id: str, title: str, kpi: str, fix: str) -> Result:
    report = _report(ev)
    if report is None:
        return _no_report(ev, id, title)
    entry = next((b for b in report.get("budgets", []) if b["kpi"] == kpi), None)
    if entry is None or entry.get("ok") is None:
        return Result(id, title, "skip", f"no {kpi} measured in the window")
    sign = "<=" if entry["direction"] == "max" else ">="
    detail = f"{kpi} {entry['value']:g} (budget {sign} {entry['budget']:g})"
    if entry["ok"]:
        return Result(id, title, "pass", detail)
    return Result(id, title, "fail", detail, fix)


def cache_hit_ratio(ev: Evidence) -> Result:
    fix = "cache what is read often (Rule(cache_ttl=...), @cache.cached); look at the namespaces with misses"
    return _budget(ev, "cache_hit_ratio", "Cache hit ratio vs budget", "cache_hit_ratio", fix)


def error_rate(ev: Evidence) -> Result:
    fix = "the dashboard lists the failing routes; the app's logs carry the request id of each 5xx"
    return _budget(ev, "error_rate", "Error rate vs budget", "error_rate", fix)


def latency_budget(ev: Evidence) -> Result:
    fix = "see slow_routes; perfkit bench reproduces the latency locally"
    return _budget(ev, "latency_budget", "p95 latency vs budget", "p95_ms", fix)
