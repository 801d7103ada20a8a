"""Trends and regressions from the per-minute rollups in the store.

Rollups are written by every process (`publisher.py`) and kept for the configured retention (7 days by
default; older minutes are pruned). A regression compares the last `window` with a baseline: the same
span one day earlier, or, when a deploy was marked (`POST /perf/api/deploy`), the span before it.
"""

from __future__ import annotations

import time
from typing import Any

from perfkit.monitor import kpis
from perfkit.monitor.snapshots import Snapshot, add
from perfkit.monitor.store.base import MonitorStore

DEPLOY_KEY = "deploy"


def point(window: Snapshot, seconds: float) -> dict[str, Any]:
    overall, _ = kpis.requests(window, seconds)
    return {
        "throughput_rps": overall["throughput_rps"],
        "p50_ms": overall["p50_ms"],
        "p95_ms": overall["p95_ms"],
        "p99_ms": overall["p99_ms"],
        "error_rate": overall["error_rate"],
        "requests": overall["requests"],
        "cache_hit_ratio": kpis.cache(window)["hit_ratio"],
        "db_p95_ms": kpis.database(window)["p95_ms"],
    }


async def series(store: MonitorStore, since: float, until: float | None = None) -> list[dict[str, Any]]:
    """One point per minute with data: request KPIs and the highest system readings of that minute."""
    until = time.time() if until is None else until
    by_minute: dict[int, list[Snapshot]] = {}
    for minute, rollup in await store.rollups(int(since // 60), int(until // 60)):
        by_minute.setdefault(minute, []).append(rollup)
    out = []
    for minute, items in sorted(by_minute.items()):
        system: dict[str, float] = {}
        for item in items:
            for key, value in item.get("system", {}).items():
                system[key] = max(value, system.get(key, 0.0))
        out.append({"t": minute * 60, **point(add(items), 60.0), **system})
    return out


async def window(store: MonitorStore, start: float, end: float) -> Snapshot:
    return add([r for _, r in await store.rollups(int(start // 60), int(end // 60) - 1)])


async def mark_deploy(store: MonitorStore, version: str, at: float | None = None) -> dict[str, Any]:
    mark = {"version": version, "at": time.time() if at is None else at}
    await store.put(DEPLOY_KEY, mark)
    return mark


def compare(
    current: Snapshot, baseline: Snapshot, seconds: float, min_requests: int = 20
) -> list[dict[str, Any]]:
    """Regressions of `current` against `baseline`: p95 up 20 % (and 20 ms), error rate up 1 point."""
    now, _ = kpis.requests(current, seconds)
    then, _ = kpis.requests(baseline, seconds)
    if now["requests"] < min_requests or then["requests"] < min_requests:
        return []
    out = []
    if now["p95_ms"] and then["p95_ms"]:
        change = now["p95_ms"] / then["p95_ms"] - 1
        if change >= 0.2 and now["p95_ms"] - then["p95_ms"] >= 20:
            out.append(
                {
                    "kpi": "p95_ms",
                    "now": now["p95_ms"],
                    "baseline": then["p95_ms"],
                    "change": round(change, 3),
                    "message": f"p95 regressed {change * 100:.0f} %: "
                    f"{then['p95_ms']:.0f} -> {now['p95_ms']:.0f} ms",
                }
            )
    err_now, err_then = now["error_rate"] or 0.0, then["error_rate"] or 0.0
    if err_now - err_then >= 0.01:
        out.append(
            {
                "kpi": "error_rate",
                "now": err_now,
                "baseline": err_then,
                "change": round(err_now - err_then, 4),
                "message": f"error rate regressed: {err_then * 100:.1f} % -> {err_now * 100:.1f} %",
            }
        )
    return out


async def regressions(store: MonitorStore, span: float = 3600.0, now: float | None = None) -> dict[str, Any]:
    """Compare the last `span` seconds with the baseline (the marked deploy, else the previous day)."""
    now = time.time() if now is None else now
    deploy = await store.get(DEPLOY_KEY)
    if deploy is not None and now - deploy["at"] < 7 * 86400:
        at = float(deploy["at"])
        seconds = min(span, now - at)
        current, baseline = await window(store, at, now + 60), await window(store, at - span, at)
        basis = f"before deploy {deploy['version']}"
    else:
        seconds = span
        current = await window(store, now - span, now + 60)
        baseline = await window(store, now - 86400 - span, now - 86400 + 60)
        basis = "previous day"
    return {"baseline": basis, "regressions": compare(current, baseline, max(seconds, 60.0))}
