"""`perfkit export grafana|alerts`: a Grafana dashboard JSON, or Prometheus alerting rules (YAML).

    perfkit export grafana -o perfkit-dashboard.json
    perfkit export alerts -o perfkit-rules.yml --rule "p95 > 500ms for 5m" --budget p95_ms=800

Exit codes: 0 written, 2 usage error (a bad rule, budget or duration).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from perfkit.config import parse_duration
from perfkit.errors import ConfigurationError
from perfkit.monitor.config import Budgets
from perfkit.monitor.grafana import dashboard
from perfkit.monitor.promrules import render, rule_groups


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "what", choices=("grafana", "alerts"), help="grafana: a dashboard; alerts: alerting rules"
    )
    parser.add_argument("-o", "--output", metavar="PATH", default="-", help="where to write ('-': stdout)")
    parser.add_argument("--title", default="perfkit", help="grafana: the dashboard's title (default perfkit)")
    parser.add_argument("--uid", default="perfkit", help="grafana: the dashboard's uid (default perfkit)")
    parser.add_argument(
        "--rule", action="append", default=[], metavar="RULE",
        help="alerts: a monitor alert rule, e.g. 'p95 > 500ms for 5m' (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--budget", action="append", default=[], metavar="NAME=VALUE",
        help="alerts: a budget other than the default, e.g. p95_ms=800 (repeatable)",
    )  # fmt: skip
    parser.add_argument("--window", default="5m", help="alerts: the budgets' rate window (default 5m)")
    parser.add_argument(
        "--for", dest="for_", default="10m", help="alerts: how long a budget is exceeded (10m)"
    )


def _budgets(pairs: list[str]) -> Budgets:
    fields = {f.name: f.type for f in dataclasses.fields(Budgets)}
    values: dict[str, float] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        name = name.strip()
        if not sep or name not in fields:
            raise ConfigurationError(
                "--budget", f"{pair!r} is not NAME=VALUE with NAME one of {sorted(fields)}"
            )
        try:
            values[name] = float(raw)
        except ValueError:
            raise ConfigurationError("--budget", f"{pair!r}: {raw!r} is not a number") from None
    return dataclasses.replace(Budgets(), **values)  # type: ignore[arg-type]  # float fields; int is coerced


def run(args: argparse.Namespace) -> int:
    if args.what == "grafana":
        text = json.dumps(dashboard(args.title, args.uid), indent=2) + "\n"
    else:
        window = parse_duration("--window", args.window)
        for_s = parse_duration("--for", args.for_)
        text = render(rule_groups(_budgets(args.budget), args.rule, window, for_s))
    if args.output == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {args.output}", file=sys.stderr)
    return 0
