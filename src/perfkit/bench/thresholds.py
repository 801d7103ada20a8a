"""Thresholds: `p95<500ms`, `errors<1%`, `rps>1000`, global or per request name (`list:p95<200ms`).

Metrics: latency percentiles `pNN` (any, e.g. p75 or p99.99), `min`, `mean`, `max` (units us, ms, s;
a bare number is ms); `errors` (error rate: `1%` or `0.01`); `rps` (responses per second);
`requests` (a count); `checks` (the pass rate of all checks, like `errors`). An unknown metric or
request name is a usage error (exit 2), never a silent pass; a threshold whose metric has no samples
(no responses, no checks) fails.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from perfkit.bench.hdr import Histogram
from perfkit.bench.report.schema import ALL
from perfkit.errors import ConfigurationError

_EXPR = re.compile(
    r"^\s*(?:(?P<name>.+?):)?(?P<metric>[a-z][a-z0-9._-]*)\s*(?P<op><=|>=|<|>)\s*(?P<value>.+?)\s*$"
)
OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_TIME_UNITS = {"us": 0.001, "µs": 0.001, "ms": 1.0, "s": 1000.0}
LATENCY = re.compile(r"^p(\d{1,2}(\.\d+)?|100)$")
METRICS = ("pNN", "min", "mean", "max", "errors", "rps", "requests", "checks")


@dataclass(frozen=True)
class Threshold:
    expression: str
    name: str | None  # None: all requests
    metric: str
    op: str
    limit: float  # ms for latencies, a fraction for rates, per second for rps

    def describe_limit(self) -> str:
        if self.metric in ("errors", "checks"):
            return f"{self.limit * 100:g}%"
        if self.metric in ("rps", "requests"):
            return f"{self.limit:g}"
        return f"{self.limit:g}ms"


def _number(raw: str, expr: str, option: str = "--threshold") -> float:
    try:
        return float(raw)
    except ValueError:
        raise ConfigurationError(option, f"{expr!r}: {raw!r} is not a number") from None


def split(
    expr: str, option: str = "--threshold", example: str = "p95<500ms"
) -> tuple[str | None, str, str, str]:
    """`[NAME:]METRIC OP VALUE` as (name or None, metric, op, value lower-cased): the expression syntax
    shared by `perfkit bench --threshold` and `perfkit lighthouse --budget`."""
    m = _EXPR.match(expr)
    if not m:
        raise ConfigurationError(option, f"{expr!r} is not [NAME:]METRIC<VALUE, e.g. {example!r}")
    return m.group("name"), m.group("metric"), m.group("op"), m.group("value").lower()


def milliseconds(raw: str, expr: str, option: str = "--threshold") -> float:
    """A time limit in ms from `500ms`, `1.5s`, `800us` or a bare number (ms)."""
    for unit in sorted(_TIME_UNITS, key=len, reverse=True):
        if raw.endswith(unit):
            return _number(raw[: -len(unit)], expr, option) * _TIME_UNITS[unit]
    return _number(raw, expr, option)


def number(raw: str, expr: str, option: str = "--threshold") -> float:
    """A plain number, or a usage error naming the expression."""
    return _number(raw, expr, option)


def parse_threshold(expr: str) -> Threshold:
    name, metric, op, raw = split(expr)
    if LATENCY.match(metric) or metric in ("min", "mean", "max"):
        if LATENCY.match(metric) and float(metric[1:]) > 100:
            raise ConfigurationError("--threshold", f"{expr!r}: percentile above 100")
        limit = milliseconds(raw, expr)
    elif metric in ("errors", "checks"):
        limit = _number(raw[:-1], expr) / 100 if raw.endswith("%") else _number(raw, expr)
        if not 0 <= limit <= 1:
            raise ConfigurationError("--threshold", f"{expr!r}: a rate is between 0% and 100%")
    elif metric in ("rps", "requests"):
        limit = _number(raw.removesuffix("/s"), expr)
    else:
        raise ConfigurationError(
            "--threshold", f"{expr!r}: unknown metric {metric!r}; use one of {', '.join(METRICS)}"
        )
    if metric == "checks" and name is not None:
        raise ConfigurationError("--threshold", f"{expr!r}: 'checks' is global (no request name)")
    return Threshold(expr.strip(), name.strip() if name else None, metric, op, limit)


def validate_names(thresholds: Iterable[Threshold], known: set[str]) -> None:
    """A threshold naming a request the target never makes is a usage error."""
    for t in thresholds:
        if t.name is not None and t.name not in known:
            raise ConfigurationError(
                "--threshold",
                f"{t.expression!r}: unknown request name {t.name!r}; "
                f"known: {', '.join(sorted(known)) or 'none'}",
            )


def evaluate(t: Threshold, report: dict[str, Any]) -> dict[str, Any]:
    """One threshold against a report document: the actual value, pass/fail and why."""
    entry = report["names"].get(t.name or ALL)
    actual: float | None = None
    reason = ""
    if t.metric == "checks":
        passes = sum(c["passes"] for c in report["checks"].values())
        fails = sum(c["fails"] for c in report["checks"].values())
        actual = passes / (passes + fails) if passes + fails else None
    elif entry is None or not entry["requests"]:
        actual = None
    elif t.metric == "errors":
        actual = entry["error_rate"]
    elif t.metric == "rps":
        actual = entry["rps"]
    elif t.metric == "requests":
        actual = float(entry["requests"])
    else:
        lat = entry["latency_ms"]
        if lat is None or not lat["count"]:
            actual = None
        elif t.metric in lat:
            actual = float(lat[t.metric])
        else:
            actual = Histogram.decode(entry["histogram"]).percentile(float(t.metric[1:])) / 1000
    if actual is None:
        passed, reason = False, "no samples"
    else:
        passed = OPS[t.op](actual, t.limit)
    return {
        "expression": t.expression,
        "name": t.name,
        "metric": t.metric,
        "op": t.op,
        "limit": t.limit,
        "actual": actual,
        "passed": passed,
        "reason": reason,
    }
