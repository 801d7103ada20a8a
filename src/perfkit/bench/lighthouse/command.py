"""`perfkit lighthouse URL`: argument parsing and the exit code; the work is in `runner` and `budgets`.

Exit codes: 0 every budget passed; 1 a budget failed, or Lighthouse could not measure the page;
2 usage error (a malformed or unknown budget, Lighthouse or Chromium missing, an unreadable monitor
report), always before Lighthouse runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from perfkit.bench.lighthouse.budgets import CATEGORIES, Budget, evaluate, parse_budget
from perfkit.bench.lighthouse.runner import find_chromium, find_lighthouse, run_lighthouse, summarize
from perfkit.config import parse_duration
from perfkit.errors import ConfigurationError

EXIT_OK, EXIT_FAILED = 0, 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", help="the page to audit (http:// or https://)")
    parser.add_argument(
        "--budget", action="append", default=[], metavar="EXPR",
        help="repeatable: performance>=90, lcp<2500ms, cls<0.1, tbt<200ms (perfkit bench's syntax)",
    )  # fmt: skip
    parser.add_argument("--categories", default="performance", help="categories to run, comma-separated")
    parser.add_argument("--form-factor", choices=("mobile", "desktop"), default="mobile")
    parser.add_argument(
        "--lighthouse", metavar="PATH", help="Lighthouse's CLI, package or node_modules folder"
    )
    parser.add_argument(
        "--chrome", metavar="PATH", help="the Chromium to drive (default CHROME_PATH, /usr/bin/chromium)"
    )
    parser.add_argument("--timeout", default="120s", help="give up on a run after this long (default 120s)")
    parser.add_argument("--json", metavar="PATH", help="write perfkit's JSON report ('-' for stdout)")
    parser.add_argument(
        "--monitor-report", metavar="PATH", help="a saved GET /perf/report JSON: the run is folded into it"
    )


def _categories(args: argparse.Namespace, budgets: list[Budget]) -> list[str]:
    chosen = [c.strip() for c in args.categories.split(",") if c.strip()]
    for name in chosen:
        if name not in CATEGORIES:
            raise ConfigurationError(
                "--categories", f"unknown category {name!r}; use {', '.join(CATEGORIES)}"
            )
    for budget in budgets:
        if budget.category and budget.metric not in chosen:
            chosen.append(budget.metric)
    return chosen or ["performance"]


def _monitor_report(path: str) -> dict[str, Any]:
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigurationError("--monitor-report", f"cannot read {path}: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("budgets"), list) or "kpis" not in doc:
        raise ConfigurationError(
            "--monitor-report", f"{path} is not a perfkit monitor report (GET /perf/report)"
        )
    return doc


def fold(monitor: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    """The monitor report with the run in `lighthouse` and each budget among its `budgets` (weight 0:
    the monitor's own score is unchanged)."""
    monitor["lighthouse"] = doc
    kept = [b for b in monitor["budgets"] if b.get("source") != "lighthouse"]
    for b in doc["budgets"]:
        kept.append({
            "kpi": f"lighthouse_{b['metric']}", "value": b["actual"], "budget": b["limit"],
            "unit": "score" if b["metric"] in CATEGORIES else ("" if b["metric"] == "cls" else "ms"),
            "direction": "min" if b["op"].startswith(">") else "max", "weight": 0, "score": None,
            "ok": b["passed"], "source": "lighthouse",
        })  # fmt: skip
    monitor["budgets"] = kept
    return monitor


def _shown(budget: dict[str, Any]) -> str:
    value = budget["actual"]
    if value is None:
        return "no value"
    if budget["metric"] in CATEGORIES or budget["metric"] == "cls":
        return f"{value:g}"
    return f"{value:.0f}ms"


def run(args: argparse.Namespace) -> int:
    budgets = [parse_budget(b) for b in args.budget]
    if not args.url.startswith(("http://", "https://")):
        raise ConfigurationError("url", f"{args.url!r} is not an http:// or https:// URL")
    categories = _categories(args, budgets)
    timeout = parse_duration("--timeout", args.timeout)
    monitor = _monitor_report(args.monitor_report) if args.monitor_report else None
    lighthouse, chrome = find_lighthouse(args.lighthouse), find_chromium(args.chrome)
    report = run_lighthouse(
        args.url, lighthouse, chrome, categories=categories, form_factor=args.form_factor, timeout=timeout
    )
    doc = summarize(report)
    doc["budgets"] = [evaluate(b, doc) for b in budgets]
    doc["passed"] = all(b["passed"] for b in doc["budgets"])
    if args.json == "-":
        print(json.dumps(doc, indent=2))
    elif args.json:
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
    if monitor is not None:
        Path(args.monitor_report).write_text(json.dumps(fold(monitor, doc), indent=2) + "\n")
    out = sys.stderr if args.json == "-" else sys.stdout
    scores = "  ".join(f"{k} {v}" for k, v in doc["scores"].items())
    print(
        f"Lighthouse {doc['lighthouse_version']} {doc['final_url']} ({doc['form_factor']}): {scores}",
        file=out,
    )
    print("  " + "  ".join(f"{k} {m['display'] or m['value']}" for k, m in doc["metrics"].items()), file=out)
    for b in doc["budgets"]:
        print(f"  budget {b['expression']}: {_shown(b)} {'ok' if b['passed'] else 'FAILED'}", file=out)
    if not doc["passed"]:
        failed = ", ".join(f"{b['expression']!r} ({_shown(b)})" for b in doc["budgets"] if not b["passed"])
        print(f"perfkit lighthouse: budget missed: {failed}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK
