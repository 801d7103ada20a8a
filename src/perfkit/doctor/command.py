"""`perfkit doctor URL` / `perfkit doctor --app module:app`: the deployment checklist, for people and CI.

Exit codes: 0 every check passed or warned, 1 a check failed (`--strict`: or warned), 2 bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from typing import Any

from perfkit.doctor.result import Checklist
from perfkit.doctor.run import diagnose
from perfkit.doctor.serve import load_app, served
from perfkit.errors import ConfigurationError

MARKS = {"pass": "PASS", "warn": "WARN", "fail": "FAIL", "skip": "SKIP"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", nargs="?", help="the deployment's base URL (http:// or https://)")
    parser.add_argument(
        "--app", metavar="MODULE:ATTR", help="serve this ASGI app in-process instead of a URL"
    )
    parser.add_argument(
        "--path",
        action="append",
        dest="paths",
        metavar="PATH",
        help="a page to check (repeatable; default /)",
    )
    parser.add_argument(
        "--static", metavar="PATH", help="a static asset to check (default: one the page links)"
    )
    parser.add_argument("--prefix", default=None, help="where the monitor is mounted (default /perf)")
    parser.add_argument(
        "--token", default=None, help="the monitor's bearer token (default: $PERFKIT_MONITOR_TOKEN)"
    )
    parser.add_argument("--insecure", action="store_true", help="do not verify TLS certificates")
    parser.add_argument("--cacert", metavar="FILE", help="verify TLS against this CA bundle (a private CA)")
    parser.add_argument("--strict", action="store_true", help="exit 1 on a warning too")
    parser.add_argument("--json", action="store_true", help="print the checklist as JSON (schema: docs)")


def render(checklist: Checklist) -> str:
    lines = [f"perfkit doctor {checklist.target}", ""]
    for r in checklist.results:
        lines.append(f"  [{MARKS[r.status]}] {r.title}: {r.detail}")
        if r.fix and r.status in ("warn", "fail"):
            lines.append(f"         fix: {r.fix}")
    lines += ["", checklist.summary + (f", {checklist.failed} failed" if checklist.failed else "")]
    return "\n".join(lines)


async def _check(args: argparse.Namespace, token: str | None) -> Checklist:
    options: dict[str, Any] = {
        "paths": args.paths,
        "prefix": args.prefix or os.environ.get("PERFKIT_MONITOR_PREFIX") or "/perf",
        "token": token,
        "static": args.static,
        "verify": False if args.insecure else (args.cacert or True),
    }
    if args.app:
        async with served(load_app(args.app)) as url:
            return await diagnose(url, **options)
    return await diagnose(args.url, **options)


def run(args: argparse.Namespace) -> int:
    if bool(args.url) == bool(args.app):
        raise ConfigurationError("doctor", "give a URL or --app MODULE:ATTR (one of them)")
    token = args.token or os.environ.get("PERFKIT_MONITOR_TOKEN") or None
    # an --app that configures logging at INFO would print a line per request doctor makes
    logging.getLogger("httpx").setLevel(logging.WARNING)
    checklist = asyncio.run(_check(args, token))
    if args.json:
        json.dump(checklist.as_json(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(render(checklist))
    return checklist.exit_code(args.strict)
