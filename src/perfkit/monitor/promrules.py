"""Prometheus alerting rules equivalent to the monitor's budgets and alert rules (`perfkit export alerts`).

Each budget of `Budgets` becomes a rule on the same KPI, computed from the series `/perf/metrics`
exports the way the monitor's report computes it (tests/monitor/test_export.py checks the names
against a real scrape, and the file with `promtool check rules`); each `AlertRule` ("p95 > 500ms for
5m over 1m") becomes a rule with its threshold, its `for` and its window as the range. `render()` writes
the YAML Prometheus loads (`rule_files:`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from perfkit.errors import ConfigurationError
from perfkit.monitor.alerts import AlertRule
from perfkit.monitor.config import Budgets

__all__ = ["budget_rules", "kpi_expr", "render", "rule_groups"]

_REQ = "perfkit_http_request_duration_seconds"
_CACHE = "perfkit_cache_operations_total"
_EVENTS = "perfkit_jobs_events_total"
_DB = "perfkit_db_query_duration_seconds"


def _duration(seconds: float) -> str:
    """A Prometheus duration: whole seconds, at least 1s."""
    return f"{max(1, round(seconds))}s"


def kpi_expr(kpi: str, window: str) -> str:
    """The PromQL of one of the monitor's KPIs (alerts.py's names) over `window` (a duration: "5m")."""
    w = f"[{window}]"
    quantiles = {"p50": 0.5, "p95": 0.95, "p99": 0.99}
    if kpi in quantiles:
        return f"histogram_quantile({quantiles[kpi]}, sum by (le) (rate({_REQ}_bucket{w}))) * 1000"
    hits = f'sum(rate({_CACHE}{{op="get",outcome="hit"}}{w}))'
    # a miss is a miss in the last tier: L2 where the namespace has one, else L1 (kpis.cache)
    last_misses = (
        f'sum(sum by (namespace) (rate({_CACHE}{{op="get",tier="l2",outcome=~"miss|error"}}{w})) '
        f'or sum by (namespace) (rate({_CACHE}{{op="get",tier="l1",outcome=~"miss|error"}}{w})))'
    )
    exprs = {
        "avg": f"sum(rate({_REQ}_sum{w})) / sum(rate({_REQ}_count{w})) * 1000",
        "error_rate": f'sum(rate({_REQ}_count{{status="5xx"}}{w})) / sum(rate({_REQ}_count{w}))',
        "throughput": f"sum(rate({_REQ}_count{w}))",
        "cache_hit_ratio": f"{hits} / ({hits} + {last_misses})",
        "job_failure_rate": (
            f'sum(rate({_EVENTS}{{event="failed"}}{w})) / '
            f'(sum(rate({_EVENTS}{{event="succeeded"}}{w})) + sum(rate({_EVENTS}{{event="failed"}}{w})))'
        ),
        "db_p95": f"histogram_quantile(0.95, sum by (le) (rate({_DB}_bucket{w}))) * 1000",
        "queries_per_request": f"sum(rate(perfkit_http_db_queries_total{w})) / sum(rate({_REQ}_count{w}))",
        "cpu": "max(perfkit_system_cpu_percent)",
        "memory": "max(perfkit_system_memory_percent)",
        "disk": "max(perfkit_system_disk_percent)",
    }
    if kpi == "score":
        raise ConfigurationError(
            "alerts", "'score' is the monitor's own report score: it has no Prometheus series"
        )
    if kpi not in exprs:
        raise ConfigurationError("alerts", f"no Prometheus expression for KPI {kpi!r}; KPIs: {sorted(exprs)}")
    return exprs[kpi]


def _rule(name: str, expr: str, for_s: float, summary: str, severity: str = "warning") -> dict[str, Any]:
    rule: dict[str, Any] = {"alert": name, "expr": expr}
    if for_s:
        rule["for"] = _duration(for_s)
    rule["labels"] = {"severity": severity, "source": "perfkit"}
    rule["annotations"] = {"summary": summary, "description": summary + " (now {{ $value }})"}
    return rule


# budget field -> (alert name, KPI, comparison, unit text)
_BUDGETS: dict[str, tuple[str, str, str, str]] = {
    "avg_ms": ("PerfkitAverageLatencyOverBudget", "avg", ">", "ms"),
    "p95_ms": ("PerfkitP95LatencyOverBudget", "p95", ">", "ms"),
    "error_rate": ("PerfkitErrorRateOverBudget", "error_rate", ">", ""),
    "db_query_ms": ("PerfkitSlowStatements", "db_p95", ">", "ms"),
    "cache_hit_ratio": ("PerfkitCacheHitRatioUnderBudget", "cache_hit_ratio", "<", ""),
    "cpu_percent": ("PerfkitCpuOverBudget", "cpu", ">", "%"),
    "memory_percent": ("PerfkitMemoryOverBudget", "memory", ">", "%"),
    "disk_percent": ("PerfkitDiskOverBudget", "disk", ">", "%"),
    "job_failure_rate": ("PerfkitJobFailureRateOverBudget", "job_failure_rate", ">", ""),
    "queries_per_request": ("PerfkitQueriesPerRequestOverBudget", "queries_per_request", ">", ""),
}


def budget_rules(budgets: Budgets, window: float = 300.0, for_s: float = 600.0) -> list[dict[str, Any]]:
    """One rule per budget: the KPI over `window` seconds past its budget for `for_s` seconds."""
    rules = []
    for field, (name, kpi, op, unit) in _BUDGETS.items():
        threshold = getattr(budgets, field)
        expr = f"{kpi_expr(kpi, _duration(window))} {op} {threshold:g}"
        rules.append(_rule(name, expr, for_s, f"{kpi} {op} {threshold:g}{unit} (perfkit budget {field})"))
    uncompressed = "sum(increase(perfkit_http_uncompressed_responses_total[1h])) > 0"
    summary = (
        f"responses over {budgets.uncompressed_bytes} bytes sent uncompressed (budget uncompressed_bytes)"
    )
    rules.append(_rule("PerfkitUncompressedResponses", uncompressed, 0, summary, "info"))
    return rules


def _alert_name(rule: AlertRule) -> str:
    words = re.findall(
        r"[A-Za-z0-9]+", f"{rule.kpi} {rule.op.replace('>', ' above ').replace('<', ' below ')}"
    )
    return "Perfkit" + "".join(w[:1].upper() + w[1:] for w in words) + f"{rule.threshold:g}".replace(".", "_")


def rule_groups(
    budgets: Budgets | None = None,
    rules: Sequence[AlertRule | str] = (),
    window: float = 300.0,
    for_s: float = 600.0,
) -> dict[str, Any]:
    """The rules file as a dict: group `perfkit-budgets` and, with `rules`, `perfkit-alerts`."""
    groups = [{"name": "perfkit-budgets", "rules": budget_rules(budgets or Budgets(), window, for_s)}]
    custom = []
    for given in rules:
        rule = given if isinstance(given, AlertRule) else AlertRule.parse(given)
        threshold = rule.threshold
        expr = f"{kpi_expr(rule.kpi, _duration(rule.window_s))} {rule.op} {threshold:g}"
        custom.append(_rule(_alert_name(rule), expr, rule.for_s, rule.name or expr))
    if custom:
        groups.append({"name": "perfkit-alerts", "rules": custom})
    return {"groups": groups}


def _scalar(value: Any) -> str:
    return value if isinstance(value, str) and re.fullmatch(r"[0-9]+[smhd]", value) else json.dumps(value)


def render(doc: dict[str, Any]) -> str:
    """The rules file as YAML (strings double-quoted: JSON strings are YAML)."""
    lines = ["groups:"]
    for group in doc["groups"]:
        lines += [f"  - name: {json.dumps(group['name'])}", "    rules:"]
        for rule in group["rules"]:
            lines.append(f"      - alert: {json.dumps(rule['alert'])}")
            lines.append(f"        expr: {json.dumps(rule['expr'])}")
            if "for" in rule:
                lines.append(f"        for: {_scalar(rule['for'])}")
            for section in ("labels", "annotations"):
                lines.append(f"        {section}:")
                lines += [f"          {k}: {json.dumps(v)}" for k, v in rule[section].items()]
    return "\n".join(lines) + "\n"
