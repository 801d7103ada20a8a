"""The report's `web_vitals` section from a window of merged snapshots: p75, ratings, targets, TTFB split.

Per vital: p75 (interpolated in its bucket, kept within the values observed) and the share of page
views rated good / needs-improvement / poor, which is exact because each threshold is a bucket bound.
The rating follows Core Web Vitals' rule: good when at least 75 % of page views are good (the p75 is
within "good"), poor when more than 25 % are poor, needs-improvement otherwise.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping
from typing import Any

from perfkit.metrics import bucket_quantile, span
from perfkit.monitor.rum.vitals import (
    GOOD,
    NEEDS_IMPROVEMENT,
    POOR,
    TARGETS,
    TTFB_REST,
    TTFB_SERVER,
    VITALS,
    Vital,
)
from perfkit.monitor.snapshots import buckets, extremes, rows

TOP_TARGETS = 10
Row = tuple[list[float], list[float] | None]  # a bucket row and its [min, max]


def judge(vital: Vital, bounds: tuple[float, ...], items: list[Row]) -> dict[str, Any] | None:
    """p75, count, shares and rating of some series of one vital; None without page views."""
    counts = [0.0] * (len(bounds) + 1)
    for row, _ in items:
        for i in range(len(counts)):
            counts[i] += row[i]
    total = sum(counts)
    if not total:
        return None
    good_at = bisect_left(bounds, vital.good / vital.scale)
    poor_at = bisect_left(bounds, vital.poor / vital.scale)
    good, fair = sum(counts[: good_at + 1]), sum(counts[good_at + 1 : poor_at + 1])
    poor = total - good - fair
    p75 = bucket_quantile(0.75, bounds, [r for r, _ in items], span(e for _, e in items))
    shown = None if p75 is None else round(p75 * vital.scale, 3 if vital.unit == "" else 1)
    rating = GOOD if good >= 0.75 * total else POOR if poor > 0.25 * total else NEEDS_IMPROVEMENT
    return {
        "p75": shown,
        "unit": vital.unit,
        "rating": rating,
        "views": int(total),
        "good": round(good / total, 4),
        "needs_improvement": round(fair / total, 4),
        "poor": round(poor / total, 4),
        "thresholds": [vital.good, vital.poor],
    }


def _p75_ms(window: Mapping[str, Any], name: str, keys: set[tuple[str, ...]] | None) -> float | None:
    bounds, seen = buckets(window, name), extremes(window, name)
    picked = [(r, seen.get(k)) for k, r in rows(window, name) if keys is None or k in keys]
    if not picked or not bounds:
        return None
    value = bucket_quantile(0.75, bounds, [r for r, _ in picked], span(e for _, e in picked))
    return None if value is None else round(value * 1000, 1)


def web_vitals(window: Mapping[str, Any]) -> dict[str, Any]:
    """{"overall": {vital: judged}, "pages": [per route and device], "targets": {...}, "ttfb": {...}}."""
    overall: dict[str, Any] = {}
    pages: dict[tuple[str, str], dict[str, Any]] = {}
    for name, vital in VITALS.items():
        bounds = buckets(window, vital.family) or vital.buckets
        seen = extremes(window, vital.family)
        series = [(k, (r, seen.get(k))) for k, r in rows(window, vital.family)]
        judged = judge(vital, bounds, [item for _, item in series])
        if judged is not None:
            overall[name] = judged
        for key, item in series:
            page = pages.setdefault((key[0], key[1]), {"route": key[0], "device": key[1], "vitals": {}})
            one = judge(vital, bounds, [item])
            if one is not None:
                page["vitals"][name] = one
    for (route, device), page in pages.items():
        page["views"] = max(v["views"] for v in page["vitals"].values()) if page["vitals"] else 0
        keys: set[tuple[str, ...]] = {(route, device)}
        page["ttfb_server_p75_ms"] = _p75_ms(window, TTFB_SERVER, keys)
        page["ttfb_rest_p75_ms"] = _p75_ms(window, TTFB_REST, keys)
    targets: dict[str, list[dict[str, Any]]] = {}
    for (metric, route, target), count in rows(window, TARGETS):
        targets.setdefault(metric, []).append({"route": route, "target": target, "views": int(count)})
    for items in targets.values():
        items.sort(key=lambda t: (-t["views"], t["route"], t["target"]))
        del items[TOP_TARGETS:]
    ordered = sorted(pages.values(), key=lambda p: (-p["views"], p["route"], p["device"]))
    return {
        "overall": overall,
        "pages": ordered,
        "targets": targets,
        "ttfb": {
            "server_p75_ms": _p75_ms(window, TTFB_SERVER, None),
            "rest_p75_ms": _p75_ms(window, TTFB_REST, None),
        },
    }


def budget_values(summary: Mapping[str, Any]) -> dict[str, float | None]:
    """The overall p75s as the report's budgeted KPIs (`lcp_p75_ms`, ..., `cls_p75`)."""
    out: dict[str, float | None] = {}
    for name, vital in VITALS.items():
        judged = summary["overall"].get(name)
        key = f"{name.lower()}_p75" + ("_ms" if vital.unit == "ms" else "")
        out[key] = None if judged is None else judged["p75"]
    return out


_FIX = {
    "LCP": "make the LCP element {target} arrive sooner: preload it (fetchpriority=high), serve it smaller "
    "(perfkit.images), and keep the server's TTFB down",
    "INP": "break up the long tasks behind interactions with {target}: yield to the main thread, defer "
    "non-urgent work, keep event handlers short",
    "CLS": "reserve the space of {target} before it renders: width/height on images and embeds, no content "
    "inserted above what is shown",
    "FCP": "send less render-blocking CSS and JavaScript, and cut the TTFB",
    "TTFB": "cut the server's time (see the route's latency and queries) and cache at the edge",
}


def advice(summary: Mapping[str, Any]) -> list[tuple[str, str, str, float, dict[str, Any]]]:
    """(severity, message, fix, magnitude, evidence) per page and vital not rated good, for the report's
    recommendations."""
    out = []
    top = {m: {t["route"]: t["target"] for t in reversed(items)} for m, items in summary["targets"].items()}
    for page in summary["pages"]:
        for name, judged in page["vitals"].items():
            if judged["rating"] == GOOD or judged["p75"] is None:
                continue
            vital = VITALS[name]
            unit = f" {vital.unit}" if vital.unit else ""
            target = top.get(name, {}).get(page["route"])
            message = (
                f"{name} p75 {judged['p75']:g}{unit} on {page['route']} ({page['device']}) is "
                f"{judged['rating']} (good <= {vital.good:g}{unit}; "
                f"{judged['poor'] * 100:.0f} % of views poor)"
            )
            if name == "TTFB" and page.get("ttfb_server_p75_ms") is not None:
                message += f"; the server's part p75 {page['ttfb_server_p75_ms']:g} ms"
            fix = _FIX[name].format(target=f"`{target}`" if target else "(see its attribution)")
            severity = "critical" if judged["rating"] == POOR else "warning"
            magnitude = (judged["p75"] / vital.good - 1) * 20 * (0.5 + min(1.0, page["views"] / 100))
            evidence = {
                "route": page["route"],
                "device": page["device"],
                "metric": name,
                "p75": judged["p75"],
            }
            if target:
                evidence["target"] = target
            out.append((severity, message, fix, magnitude, evidence))
    return out
