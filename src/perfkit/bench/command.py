"""`perfkit bench TARGET`: argument parsing and the exit code; the work is in the modules it calls.

Exit codes: 0 the run passed; 1 it failed: a threshold, a regression with `--fail-on-regression`,
no response at all, every response an error or every run of a task raising (unless `--allow-errors`),
open-model arrivals dropped (unless `--allow-dropped`); 2 usage error (bad option, unknown metric or
name), always before any request is sent; 130 interrupted by Ctrl-C (the partial report is written).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

from perfkit.bench.plan import DEFAULT_MAX_REQUESTS, MAX_DURATION, Plan
from perfkit.bench.scheduler import parse_rate, parse_stage
from perfkit.config import parse_duration, parse_int
from perfkit.errors import ConfigurationError

EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130
MAX_TIMEOUT = 3600.0  # a request timeout beyond an hour is a typo
MAX_CONNECTIONS = 10_000  # keep-alive connections (or closed-model users) per run, over all processes


def max_processes() -> int:
    """The most worker processes a run may use: twice the CPUs this process may run on.

    Each worker is one event loop that can keep one core busy; beyond the core count they only share
    the same CPUs (plus ~40 MB and a spawn each), adding load-generator noise instead of load. Twice
    the count leaves room for hyperthreads and for a CPU quota that differs from the affinity mask.
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on every platform
        cpus = os.cpu_count() or 1
    return max(2 * cpus, 2)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", help="an http:// URL, or a Python scenario file with @task functions")
    load = parser.add_argument_group("load shape")
    load.add_argument("--rate", help="open model: constant arrival rate, e.g. 2000/s")
    load.add_argument("--users", help="closed model: concurrent users (default 10)")
    load.add_argument(
        "--stage",
        action="append",
        default=[],
        metavar="DURATION:TARGET",
        help="ramp stage, repeatable: 30s:100/s (open) or 1m:50 (closed users)",
    )
    load.add_argument("--duration", default="10s", help="run length without stages (default 10s)")
    load.add_argument(
        "--connections", help="keep-alive connections (default: 32 open model, one per user closed)"
    )
    load.add_argument("--processes", default="1", help="worker processes whose results merge exactly")
    load.add_argument("--max-requests", default=str(DEFAULT_MAX_REQUESTS), help="hard cap on requests sent")
    load.add_argument("--timeout", default="10s", help="per-request timeout (default 10s)")
    req = parser.add_argument_group("request (URL targets)")
    req.add_argument("-X", "--method", default="GET")
    req.add_argument("-H", "--header", action="append", default=[], metavar="'NAME: VALUE'")
    req.add_argument("--body", help="request body; @FILE reads it from a file")
    req.add_argument("--name", help="request name in reports (default 'METHOD /path')")
    req.add_argument("--host", help="scenario files: base URL, e.g. http://127.0.0.1:8000")
    out = parser.add_argument_group("budgets and reports")
    out.add_argument(
        "--threshold",
        action="append",
        default=[],
        metavar="[NAME:]METRIC<VALUE",
        help="e.g. 'p95<500ms', 'errors<1%%', 'rps>1000', 'list:p99<1s'; repeatable",
    )
    out.add_argument("--json", metavar="PATH", help="write the JSON report ('-' for stdout)")
    out.add_argument("--html", metavar="PATH", help="write the self-contained HTML report")
    out.add_argument("--baseline", metavar="PATH", help="compare with an earlier JSON report")
    out.add_argument("--tolerance", default="10%", help="noise band for --baseline (default 10%%)")
    out.add_argument("--fail-on-regression", action="store_true", help="exit 1 on a baseline regression")
    out.add_argument(
        "--allow-dropped",
        action="store_true",
        help="pass even when open-model arrivals were dropped (the server or client could not keep up)",
    )
    out.add_argument(
        "--allow-errors",
        action="store_true",
        help="pass even when every response is an error or every run of a task raised",
    )
    parser.add_argument("--allow-remote", action="store_true", help="allow non-loopback targets (yours only)")
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress (live on a terminal, a line every 5 s otherwise)",
    )


def build_plan(args: argparse.Namespace) -> tuple[Plan, set[str], str]:
    """(plan, request names thresholds may use, target label) from parsed arguments."""
    from perfkit.bench.target import check_loopback, make_target, parse_endpoint

    stages = tuple(parse_stage(s) for s in args.stage)
    if stages and len({s.per_second for s in stages}) > 1:
        raise ConfigurationError("--stage", "mix of rate (/s) and user stages; use one kind")
    rate = parse_rate(args.rate) if args.rate else None
    if rate is not None and args.users:
        raise ConfigurationError(
            "--rate", "--rate (open model) and --users (closed model) exclude each other"
        )
    if stages and not stages[0].per_second and rate is not None:
        raise ConfigurationError("--stage", "user stages belong to the closed model, not with --rate")
    users = parse_int("--users", args.users, minimum=1) if args.users else (0 if stages else 10)
    duration = parse_duration("--duration", args.duration)
    total = sum(s.duration for s in stages) if stages else duration
    if not 0 < total <= MAX_DURATION:
        raise ConfigurationError(
            "--duration", f"{total:g}s: a run lasts more than 0 and at most {MAX_DURATION:g}s"
        )
    if args.target.startswith(("http://", "https://")):
        body = _body(args.body)
        target = make_target(args.target, args.method, args.header, body, args.name)
        endpoint, scenario, names, label = target.endpoint, None, {target.name}, args.target
    else:
        from perfkit.bench.scenario import load_scenario

        loaded = load_scenario(args.target)
        base = args.host or loaded.host
        if not base:
            raise ConfigurationError("--host", f"{args.target!r} sets no `host`; pass --host http://...")
        endpoint, _ = parse_endpoint(base, "--host")
        target, scenario, names, label = None, loaded.path, loaded.names, args.target
    check_loopback(endpoint.host, args.allow_remote)
    plan = Plan(
        endpoint=endpoint,
        target=target,
        scenario=scenario,
        rate=rate,
        users=users,
        stages=stages,
        connections=parse_int("--connections", args.connections, minimum=1) if args.connections else 0,
        duration=duration,
        max_requests=parse_int("--max-requests", args.max_requests, minimum=1),
        timeout=_timeout(args.timeout),
        processes=_processes(args.processes),
        allow_remote=args.allow_remote,
    )
    if not plan.open_model and not plan.users and not stages:
        raise ConfigurationError("--users", "the closed model needs at least one user")
    if plan.connection_count > MAX_CONNECTIONS:
        setting = "--connections" if plan.connections else ("--stage" if stages else "--users")
        raise ConfigurationError(
            setting,
            f"{plan.connection_count:,} connections is above the maximum of {MAX_CONNECTIONS:,} per run "
            "(each is a socket and a task; spread a larger load over several machines)",
        )
    return plan, names, label


def _timeout(raw: str) -> float:
    value = parse_duration("--timeout", raw)
    if not (math.isfinite(value) and 0 < value <= MAX_TIMEOUT):
        raise ConfigurationError(
            "--timeout", f"{raw!r}: a request timeout is more than 0 and at most {MAX_TIMEOUT:g}s"
        )
    return value


def _processes(raw: str) -> int:
    value = parse_int("--processes", raw, minimum=1)
    limit = max_processes()
    if value > limit:
        raise ConfigurationError(
            "--processes", f"{value} is above the maximum of {limit} (twice the CPUs this machine gives us)"
        )
    return value


def check_output(setting: str, raw: str | None) -> None:
    """A report path must be writable before the run starts, not found broken after it."""
    if raw is None or (raw == "-" and setting == "--json"):
        return
    path = Path(raw)
    if path.is_dir():
        raise ConfigurationError(setting, f"{raw!r} is a folder; give a file path")
    folder = path.parent
    if not folder.is_dir():
        raise ConfigurationError(setting, f"{raw!r}: the folder {str(folder)!r} does not exist")
    if not os.access(folder, os.W_OK):
        raise ConfigurationError(setting, f"{raw!r}: the folder {str(folder)!r} is not writable")


def _body(raw: str | None) -> bytes:
    if raw is None:
        return b""
    if raw.startswith("@"):
        try:
            return Path(raw[1:]).read_bytes()
        except OSError as exc:
            raise ConfigurationError("--body", f"cannot read {raw[1:]!r}: {exc}") from None
    return raw.encode()


def _tolerance(raw: str) -> float:
    text = raw.strip()
    try:
        return float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise ConfigurationError("--tolerance", f"{raw!r} is not a percentage like 10%") from None


def run(args: argparse.Namespace) -> int:
    from perfkit.bench import runner, thresholds
    from perfkit.bench.progress import make_progress
    from perfkit.bench.report import baseline as baseline_mod
    from perfkit.bench.report import schema
    from perfkit.bench.verdict import judge

    checks = [thresholds.parse_threshold(t) for t in args.threshold]
    check_output("--json", args.json)
    check_output("--html", args.html)
    plan, names, label = build_plan(args)
    thresholds.validate_names(checks, names)
    tolerance = _tolerance(args.tolerance)
    base = baseline_mod.load(args.baseline) if args.baseline else None

    progress = make_progress(plan, args.quiet)
    try:
        result = runner.run(plan, progress.tick if progress else None, handle_sigint=True)
    finally:
        if progress is not None:
            progress.stop()

    doc = schema.build(result.recorder, plan, label, result.started_at, result.elapsed)
    doc["thresholds"] = [thresholds.evaluate(t, doc) for t in checks]
    if base is not None:
        rows = baseline_mod.compare(doc, base, tolerance)
        doc["baseline"] = {"file": args.baseline, "tolerance": tolerance, "comparisons": rows}
    judge(
        doc,
        allow_dropped=args.allow_dropped,
        allow_errors=args.allow_errors,
        fail_on_regression=args.fail_on_regression,
    )
    _write_outputs(args, doc)
    if doc["interrupted"]:
        return EXIT_INTERRUPTED
    return EXIT_OK if doc["passed"] else EXIT_FAILED


def _write_outputs(args: argparse.Namespace, doc: dict[str, Any]) -> None:
    from perfkit.bench.report import text

    summary = text.render(doc)
    if args.json == "-":
        print(json.dumps(doc, indent=2))
        print(summary, file=sys.stderr)
    else:
        print(summary)
        if args.json:
            Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
    if args.html:
        from perfkit.bench.report.html import render_html

        Path(args.html).write_text(render_html(doc))
