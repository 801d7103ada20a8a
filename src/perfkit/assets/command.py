"""`perfkit assets DIR`: sizes per file and per budget group, budgets, baseline growth alerts.

Exit codes: 0 within budget, 1 a budget exceeded or matched nothing (or growth beyond
`--max-growth` with `--fail-on-growth`), 2 usage error.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from perfkit.config import parse_choice
from perfkit.errors import ConfigurationError

SCHEMA = "perfkit.assets/1"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", help="the built static files, e.g. dist/")
    parser.add_argument(
        "--budget",
        action="append",
        default=[],
        metavar="GLOB=SIZE",
        help="e.g. '*.js=250kB' '*.css=50kB' (kB = 1000 B, KiB = 1024 B); repeatable",
    )
    parser.add_argument(
        "--compression",
        default="brotli",
        help="size budgets apply to: raw, gzip, brotli (default brotli, as size-limit)",
    )
    parser.add_argument("--json", metavar="PATH", help="write the JSON report ('-' for stdout)")
    parser.add_argument("--baseline", metavar="PATH", help="an earlier --json report to compare with")
    parser.add_argument(
        "--max-growth", default="5%", help="growth alert threshold per file/group (default 5%%)"
    )
    parser.add_argument("--fail-on-growth", action="store_true", help="exit 1 on a growth alert")


def _percent(raw: str) -> float:
    text = raw.strip()
    try:
        return float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise ConfigurationError("--max-growth", f"{raw!r} is not a percentage like 5%") from None


def _growth(doc: dict[str, Any], base: dict[str, Any], limit: float) -> list[dict[str, Any]]:
    kind = doc["compression"]
    alerts = []
    old_files = {f["path"]: f for f in base.get("files", [])}
    for f in doc["files"]:
        old = old_files.get(f["path"])
        if old and old[kind] > 0 and (f[kind] - old[kind]) / old[kind] > limit:
            alerts.append(
                {
                    "what": f["path"],
                    "baseline": old[kind],
                    "current": f[kind],
                    "growth": (f[kind] - old[kind]) / old[kind],
                }
            )
    old_groups = {b["budget"]: b for b in base.get("budgets", [])}
    for b in doc["budgets"]:
        old = old_groups.get(b["budget"])
        if old and old["actual"] > 0 and (b["actual"] - old["actual"]) / old["actual"] > limit:
            alerts.append(
                {
                    "what": b["budget"],
                    "baseline": old["actual"],
                    "current": b["actual"],
                    "growth": (b["actual"] - old["actual"]) / old["actual"],
                }
            )
    return alerts


def run(args: argparse.Namespace) -> int:
    from perfkit.assets.budgets import evaluate, parse_budget
    from perfkit.assets.report import render
    from perfkit.assets.sizes import scan

    kind = parse_choice("--compression", args.compression, ("raw", "gzip", "brotli"))
    budgets = [parse_budget(b) for b in args.budget]
    limit = _percent(args.max_growth)
    root = Path(args.dir)
    if not root.is_dir():
        raise ConfigurationError("dir", f"{args.dir!r} is not a directory")
    base = None
    if args.baseline:
        try:
            base = json.loads(Path(args.baseline).read_text())
        except (OSError, ValueError) as exc:
            raise ConfigurationError("--baseline", f"cannot read {args.baseline!r}: {exc}") from None
        if base.get("schema") != SCHEMA:
            raise ConfigurationError("--baseline", f"{args.baseline!r} is not a {SCHEMA} report")
    files = scan(root)
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "dir": str(root),
        "compression": kind,
        "files": [{"path": f.path, "raw": f.raw, "gzip": f.gzip, "brotli": f.brotli} for f in files],
        "totals": {k: sum(f.get(k) for f in files) for k in ("raw", "gzip", "brotli")},
        "budgets": [evaluate(b, files, kind) for b in budgets],
        "growth": None,
    }
    passed = all(b["passed"] for b in doc["budgets"])
    if base is not None:
        doc["growth"] = {"baseline": args.baseline, "max_growth": limit, "alerts": _growth(doc, base, limit)}
        if args.fail_on_growth and doc["growth"]["alerts"]:
            passed = False
    doc["passed"] = passed
    text = render(doc)
    if args.json == "-":
        print(json.dumps(doc, indent=2))
    else:
        print(text)
        if args.json:
            Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
    return 0 if passed else 1
