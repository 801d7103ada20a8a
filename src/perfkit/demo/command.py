"""`perfkit demo`: seed, serve the instrumented app with a job worker, measure each naive/optimised pair
with `perfkit bench`, print the before/after table and the monitoring report, then keep serving.

The app and the worker are child processes (as they are in production), the load generator runs here;
all three read the same stores (`perfkit.demo.settings`). Every child is stopped by its pid on the way out.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import sys
import time
from pathlib import Path
from typing import Any

from perfkit.config import parse_duration
from perfkit.errors import ConfigurationError, PerfkitError

QUICK_LOAD = {"users": 8, "duration": 1.5}
FULL_LOAD = {"users": 8, "duration": 5.0}
DEFAULT_DIR = ".perfkit/demo"  # apart from an app's own `.perfkit/` stores (its monitor.db)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-serve", action="store_true", help="exit after the table (default: keep serving)"
    )
    parser.add_argument("--quick", action="store_true", help="shorter load per variant: about 30 s in all")
    parser.add_argument("--json", metavar="FILE", help="also write the table and the report as JSON")
    parser.add_argument("--markdown", metavar="FILE", help="also write the table as Markdown")
    parser.add_argument("--redis", metavar="URL", help="cache, jobs and monitoring on this Redis")
    parser.add_argument("--postgres", metavar="URL", help="the demo's data (and jobs) on this PostgreSQL")
    parser.add_argument(
        "--dir",
        metavar="PATH",
        default=DEFAULT_DIR,
        help=f"the demo's own folder for its embedded stores and logs (default {DEFAULT_DIR}); "
        "a folder the demo did not create is refused",
    )
    parser.add_argument(
        "--duration", metavar="SECONDS", help="load per variant (default 5s, 1.5s with --quick)"
    )
    parser.add_argument("--users", type=int, help="concurrent users of the load (default 8)")
    parser.add_argument("--port", type=int, help="the app's port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--scale", type=float, default=1.0, help="data volume factor (tests use 0.01)")
    parser.add_argument(
        "--django", action="store_true", help="the same app as a Django project (ASGI, perfkit.django)"
    )


def run(args: argparse.Namespace) -> int:
    """0 when every check passed and no request failed, 1 otherwise (2: bad options, via the CLI)."""
    from perfkit.demo import folder, processes, report
    from perfkit.demo.prepare import prepare
    from perfkit.demo.settings import DemoSettings

    load = _load(args)
    for option in ("json", "markdown"):
        target = getattr(args, option)
        if target and not Path(target).resolve().parent.is_dir():
            raise ConfigurationError(f"--{option}", f"{target!r}: its directory does not exist")
    if args.port is not None and not 0 < args.port < 65536:
        raise ConfigurationError("--port", f"{args.port} is not a TCP port")
    if args.django:
        _require_django()
    given_token = os.environ.get("PERFKIT_MONITOR_TOKEN")
    token = given_token or secrets.token_urlsafe(18)
    settings = DemoSettings.choose(
        args.dir, redis=args.redis, postgres=args.postgres, token=token, scale=args.scale
    )
    directory = folder.claim(Path(args.dir))  # before anything is written or deleted
    started = time.perf_counter()
    say = report.Printer()
    say.header(settings, django=bool(args.django))
    prepared = asyncio.run(prepare(settings, redis_option=args.redis is not None))
    say.seeded(prepared)

    port = args.port or processes.free_port()
    base = f"http://127.0.0.1:{port}"
    # a supervisor's SIGTERM and a closed terminal's SIGHUP end the demo as Ctrl-C does: through the
    # `finally` that stops the children (which also die with the demo if it is killed outright)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGHUP, lambda *_: sys.exit(129))
    django = bool(args.django)
    extra = _django_environ() if django else {}
    app = processes.start_app(
        port, {**os.environ, **settings.environ(), **extra}, directory / "app.log", django=django
    )
    worker = None
    try:
        worker_env = {k: v for k, v in os.environ.items() if k != "PERFKIT_MONITOR_TOKEN"}
        worker = processes.start_worker(
            {**worker_env, **settings.environ(token=False), **extra}, directory / "worker.log", django=django
        )
        processes.wait_until_up(app, base + "/perf/health")
        if (why := worker.failed()) is not None:
            raise PerfkitError(why)
        say.serving(base, app.pid, worker.pid)
        doc = _measure(base, settings, prepared, load, say, started, django=django)
        doc["elapsed_s"] = round(time.perf_counter() - started, 1)
        say.table(doc)
        for option, render in (
            ("json", lambda d: json.dumps(d, indent=2)),
            ("markdown", report.render_markdown),
        ):
            if getattr(args, option):
                Path(getattr(args, option)).write_text(render(doc) + "\n")
                say.line(f"wrote {getattr(args, option)}")
        if not args.no_serve:
            say.keep_serving(base, token, shown=given_token is None, api_docs=not django)
            with contextlib.suppress(KeyboardInterrupt):
                app.proc.wait()
    finally:
        processes.stop_all([worker, app])
    return 0 if doc["ok"] else 1


def _load(args: argparse.Namespace) -> Any:
    from perfkit.demo import measure

    if not 0 < args.scale <= 1:
        raise ConfigurationError("--scale", f"{args.scale:g} must be in (0, 1]")
    values = dict(QUICK_LOAD if args.quick else FULL_LOAD)
    if args.duration:
        values["duration"] = parse_duration("--duration", args.duration)
    if args.users is not None:
        if args.users < 1:
            raise ConfigurationError("--users", f"{args.users} must be at least 1")
        values["users"] = args.users
    return measure.Load(users=int(values["users"]), duration=float(values["duration"]))


def _require_django() -> None:
    import importlib.util

    if importlib.util.find_spec("django") is None:
        raise ConfigurationError("--django", "needs Django: pip install 'perfkit[django]'")


def _django_environ() -> dict[str, str]:
    """What the Django project's processes need besides the stores: a SECRET_KEY for this run (its cache
    backend signs what it pickles with a key derived from it), the same in the app and the worker."""
    from perfkit.demo.settings import SECRET_KEY_ENV

    return {SECRET_KEY_ENV: secrets.token_urlsafe(32)}


def _measure(
    base: str,
    settings: Any,
    prepared: dict[str, Any],
    load: Any,
    say: Any,
    started: float,
    *,
    django: bool = False,
) -> dict[str, Any]:
    import httpx

    from perfkit.demo import checks, measure

    headers = {"Authorization": f"Bearer {settings.token}"}
    with httpx.Client(base_url=base, headers=headers, timeout=60.0) as client:
        rows = []
        for pair in measure.pairs(prepared["org"], prepared["assignee"], django=django):
            say.measuring(pair)
            rows.append(measure.measure_pair(client, base, pair, load))
        verified = checks.run_all(client, prepared["org"])
        monitoring = checks.monitoring_report(client, time.perf_counter() - started)
    volume = prepared["volume"]
    return {
        "perfkit_demo": 1,
        "app": "django" if django else "fastapi",
        "machine": _machine(),
        "stores": settings.kinds(),
        "volume": {
            "organizations": volume.organizations,
            "users": volume.users,
            "tickets": volume.tickets,
            "comments": volume.comments,
        },
        "seed_seconds": prepared["seed_seconds"],
        "seed_reused": prepared["reused"],
        "load": {"model": "closed", "users": load.users, "duration_s": load.duration},
        "pairs": rows,
        "checks": verified,
        "report": monitoring,
        "ok": checks.all_passed(verified)
        and not any(p[v]["errors"] for p in rows for v in ("naive", "fast")),
    }


def _machine() -> dict[str, Any]:
    import platform

    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(terse=True),
    }
