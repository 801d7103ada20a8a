"""A Grafana dashboard for perfkit's Prometheus metrics (`perfkit export grafana`), importable as is.

The data source is a template variable (`$datasource`, any Prometheus), so the JSON imports into any
Grafana without editing; `$route` filters the HTTP panels. Every query uses the names `/perf/metrics`
exports (perfkit's collector families under the `perfkit_` prefix, plus the monitor's gauges): the
suite checks each one against a real scrape (tests/monitor/test_export.py).
"""

from __future__ import annotations

from typing import Any

__all__ = ["SCHEMA_VERSION", "dashboard"]

SCHEMA_VERSION = 39  # Grafana 10.x/11.x dashboards
_DS = {"type": "prometheus", "uid": "${datasource}"}
_R = "[$__rate_interval]"
_ROUTE = 'route=~"$route"'
_REQ = "perfkit_http_request_duration_seconds"
_CACHE = "perfkit_cache_operations_total"


def _quantiles(metric: str, by: str, selector: str = "") -> list[tuple[str, str]]:
    inner = f"{{{selector}}}" if selector else ""
    return [
        (
            f"histogram_quantile({q}, sum by (le, {by}) (rate({metric}_bucket{inner}{_R})))",
            f"p{int(q * 100)} {{{{{by}}}}}",
        )
        for q in (0.5, 0.95, 0.99)
    ]


# (section, [(title, unit, [(expr, legend)], width)])
_SECTIONS: list[tuple[str, list[tuple[str, str, list[tuple[str, str]], int]]]] = [
    ("HTTP", [
        ("Throughput by route", "reqps",
         [(f"sum by (route) (rate({_REQ}_count{{{_ROUTE}}}{_R}))", "{{route}}")], 12),
        ("Latency percentiles by route", "s", _quantiles(_REQ, "route", _ROUTE), 12),
        ("Error rate (5xx) by route", "percentunit",
         [(f'sum by (route) (rate({_REQ}_count{{status="5xx",{_ROUTE}}}{_R})) / '
           f"sum by (route) (rate({_REQ}_count{{{_ROUTE}}}{_R}))", "{{route}}")], 12),
        ("Responses by status class", "reqps",
         [(f"sum by (status) (rate({_REQ}_count{{{_ROUTE}}}{_R}))", "{{status}}")], 6),
        ("Requests in flight", "short", [("sum(perfkit_http_requests_in_flight)", "in flight")], 6),
        ("Rate-limit rejections", "reqps",
         [('sum by (class) (rate(perfkit_ratelimit_decisions_total{decision="limited"}' + _R + "))",
           "{{class}}")], 12),
        ("Response cache", "reqps",
         [(f"sum by (result) (rate(perfkit_http_response_cache_total{_R}))", "{{result}}")], 12),
    ]),
    ("Database", [
        ("DB queries per request by route", "short",
         [(f"sum by (route) (rate(perfkit_http_db_queries_total{{{_ROUTE}}}{_R})) / "
           f"sum by (route) (rate({_REQ}_count{{{_ROUTE}}}{_R}))", "{{route}}")], 12),
        ("Statement latency by operation", "s",
         _quantiles("perfkit_db_query_duration_seconds", "operation"), 12),
        ("Slow queries", "ops", [(f"sum(rate(perfkit_db_slow_queries_total{_R}))", "slow queries")], 8),
        ("Slow queries by shape and route", "ops",
         [(f"topk(10, sum by (shape, route) (rate(perfkit_db_slow_query_duration_seconds_count{_R})))",
           "{{shape}} {{route}}")], 8),
        ("N+1 findings", "ops",
         [(f"sum by (relationship, route) (rate(perfkit_db_nplusone_total{_R}))",
           "{{relationship}} {{route}}")], 8),
        ("Pool wait p95", "s",
         [(f"histogram_quantile(0.95, sum by (le) (rate(perfkit_db_pool_wait_seconds_bucket{_R})))",
           "p95")], 12),
        ("Pool connections checked out", "short", [("sum(perfkit_db_pool_checked_out)", "checked out")], 12),
    ]),
    ("Cache", [
        ("Hit ratio by tier and namespace", "percentunit",
         [(f'sum by (namespace, tier) (rate({_CACHE}{{op="get",outcome="hit"}}{_R})) / '
           f'sum by (namespace, tier) (rate({_CACHE}{{op="get",outcome=~"hit|miss|error"}}{_R}))',
           "{{namespace}} {{tier}}")], 12),
        ("Operations by tier and outcome", "ops",
         [(f"sum by (tier, op, outcome) (rate({_CACHE}{_R}))", "{{tier}} {{op}} {{outcome}}")], 12),
    ]),
    ("Jobs", [
        ("Queue depth", "short", [("sum by (queue) (perfkit_jobs_queue_depth)", "{{queue}}")], 8),
        ("Wait time p95 by queue", "s",
         [(f"histogram_quantile(0.95, sum by (le, queue) (rate(perfkit_jobs_wait_seconds_bucket{_R})))",
           "{{queue}}")], 8),
        ("Run time p95 by queue", "s",
         [(f"histogram_quantile(0.95, sum by (le, queue) (rate(perfkit_jobs_run_seconds_bucket{_R})))",
           "{{queue}}")], 8),
        ("Job events by queue", "ops",
         [(f"sum by (queue, event) (rate(perfkit_jobs_events_total{_R}))", "{{queue}} {{event}}")], 24),
    ]),
    ("Real time", [
        ("Connections", "short",
         [("sum by (transport) (perfkit_realtime_connections)", "{{transport}}")], 12),
        ("Refused and dropped", "ops",
         [(f"sum by (reason) (rate(perfkit_realtime_refused_total{_R}))", "refused {{reason}}"),
          (f"sum by (reason) (rate(perfkit_realtime_dropped_total{_R}))", "dropped {{reason}}")], 12),
    ]),
    ("Processes", [
        ("CPU", "percent", [("max(perfkit_system_cpu_percent)", "host"),
                            ("sum(perfkit_system_process_cpu_percent)", "processes")], 12),
        ("Memory", "bytes", [("sum(perfkit_system_process_rss_bytes)", "RSS")], 12),
    ]),
]  # fmt: skip


def _panel(
    pid: int, title: str, unit: str, targets: list[tuple[str, str]], gridpos: dict[str, int]
) -> dict[str, Any]:
    return {
        "id": pid,
        "type": "timeseries",
        "title": title,
        "datasource": _DS,
        "gridPos": gridpos,
        "fieldConfig": {"defaults": {"unit": unit, "min": 0}, "overrides": []},
        "options": {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        "targets": [
            {
                "refId": chr(ord("A") + i),
                "datasource": _DS,
                "expr": expr,
                "legendFormat": legend,
                "range": True,
            }
            for i, (expr, legend) in enumerate(targets)
        ],
    }


def dashboard(title: str = "perfkit", uid: str = "perfkit") -> dict[str, Any]:
    """The dashboard as a dict (`json.dumps` it): rows of time-series panels, 24 columns wide."""
    panels: list[dict[str, Any]] = []
    y = 0
    for section, items in _SECTIONS:
        panels.append({"id": len(panels) + 1, "type": "row", "title": section, "collapsed": False,
                       "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})  # fmt: skip
        y += 1
        x = 0
        for name, unit, targets, width in items:
            if x + width > 24:
                x, y = 0, y + 8
            panels.append(_panel(len(panels) + 1, name, unit, targets, {"h": 8, "w": width, "x": x, "y": y}))
            x += width
        y += 8
    route_query = f"label_values({_REQ}_count, route)"
    return {
        "title": title,
        "uid": uid,
        "tags": ["perfkit"],
        "timezone": "browser",
        "editable": True,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "annotations": {"list": []},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                    "refresh": 1,
                    "regex": "",
                    "options": [],
                },
                {
                    "name": "route",
                    "label": "Route",
                    "type": "query",
                    "datasource": _DS,
                    "query": {"query": route_query, "refId": "route"},
                    "definition": route_query,
                    "includeAll": True,
                    "multi": True,
                    "allValue": ".*",
                    "refresh": 2,
                    "sort": 1,
                    "current": {"text": "All", "value": "$__all"},
                    "options": [],
                    "hide": 0,
                },
            ]
        },
        "panels": panels,
    }
