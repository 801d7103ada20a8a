"""Lighthouse budgets: `performance>=90`, `lcp<2500ms`, `cls<0.1`, parsed like `perfkit bench` thresholds.

Categories (`performance`, `accessibility`, `best-practices`, `seo`) are scores from 0 to 100. Metrics
are the audits' values: `fcp`, `lcp`, `tbt`, `si` (speed index), `tti`, `ttfb` (the root document's
server response time) in ms (units us, ms, s; a bare number is ms), and `cls` without a unit. An
unknown name or a malformed value is a usage error (exit 2) before Lighthouse runs; a budget whose
value Lighthouse did not produce fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from perfkit.bench.thresholds import OPS, milliseconds, number, split
from perfkit.errors import ConfigurationError

OPTION = "--budget"
CATEGORIES = ("performance", "accessibility", "best-practices", "seo")
METRICS = {  # budget name -> Lighthouse audit id
    "fcp": "first-contentful-paint",
    "lcp": "largest-contentful-paint",
    "tbt": "total-blocking-time",
    "si": "speed-index",
    "tti": "interactive",
    "ttfb": "server-response-time",
    "cls": "cumulative-layout-shift",
}


@dataclass(frozen=True)
class Budget:
    expression: str
    metric: str  # a category or a key of METRICS
    op: str
    limit: float  # 0-100 for a category, ms for a time, unitless for cls

    @property
    def category(self) -> bool:
        return self.metric in CATEGORIES


def parse_budget(expr: str) -> Budget:
    name, metric, op, raw = split(expr, OPTION, "performance>=90")
    if name is not None:
        raise ConfigurationError(OPTION, f"{expr!r}: Lighthouse budgets have no request name")
    if metric in CATEGORIES:
        limit = number(raw, expr, OPTION)
        if not 0 <= limit <= 100:
            raise ConfigurationError(OPTION, f"{expr!r}: a category score is between 0 and 100")
    elif metric == "cls":
        limit = number(raw, expr, OPTION)
    elif metric in METRICS:
        limit = milliseconds(raw, expr, OPTION)
    else:
        known = ", ".join((*CATEGORIES, *METRICS))
        raise ConfigurationError(OPTION, f"{expr!r}: unknown metric {metric!r}; use one of {known}")
    return Budget(expr.strip(), metric, op, limit)


def actual(budget: Budget, summary: dict[str, Any]) -> float | None:
    """The budget's value in a run's summary (`runner.summarize`), or None when Lighthouse gave none."""
    if budget.category:
        value: float | None = summary["scores"].get(budget.metric)
        return value
    audit = summary["metrics"].get(budget.metric)
    return None if audit is None else audit["value"]


def evaluate(budget: Budget, summary: dict[str, Any]) -> dict[str, Any]:
    value = actual(budget, summary)
    passed = value is not None and OPS[budget.op](value, budget.limit)
    return {
        "expression": budget.expression,
        "metric": budget.metric,
        "op": budget.op,
        "limit": budget.limit,
        "actual": value,
        "passed": passed,
        "reason": "" if value is not None else "Lighthouse gave no value",
    }
