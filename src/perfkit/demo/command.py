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
from perfkit.errors import ConfigurationError

QUICK_LOAD = {"users": 8, "duration": 1.5}
FULL_LOAD = {"users": 8, "duration": 5.0}


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
        "--dir", metavar="PATH", default=".perfkit", help="embedded stores (default .perfkit)"
    )
    parser.add_argument(
        "--duration", metavar="SECONDS", help="load per variant (default 5s, 1.5s with --quick)"
    )
    parser.add_argument("--users", type=int, help="concurrent users of the load (default 8)")
    parser.add_argument("--port", type=int, help="the app's port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--scale", type=float, default=1.0, help="data volume factor (tests use 0.01)")


def run(args: argparse.Namespace) -> int:
    from perfkit.demo import measure, processes, report
    from perfkit.demo.settings import DemoSettings

    if not 0 < args.scale <= 1:
        raise ConfigurationError("--scale", f"{args.scale:g} must be in (0, 1]")
    load_values = dict(QUICK_LOAD if args.quick else FULL_LOAD)
    if args.duration:
        load_values["duration"] = parse_duration("--duration", args.duration)
    if args.users is not None:
        if args.users < 1:
            raise ConfigurationError("--users", f"{args.users} must be at least 1")
        load_values["users"] = args.users
    load = measure.Load(users=int(load_values["users"]), duration=float(load_values["duration"]))
    directory = Path(args.dir)
    directory.mkdir(parents=True, exist_ok=True)
    token = os.environ.get("PERFKIT_MONITOR_TOKEN") or secrets.token_urlsafe(18)
    settings = DemoSettings.choose(
        directory, redis=args.redis, postgres=args.postgres, token=token, scale=args.scale
    )
    started = time.perf_counter()
    say = report.Printer()
    say.header(settings)

    prepared = asyncio.run(_prepare(settings))
    say.seeded(prepared)

    port = args.port or processes.free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, **settings.environ()}
    # SIGTERM (a supervisor, `kill`) ends the demo as Ctrl-C does: via the `finally` that stops the children
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    app = processes.start_app(port, env, directory / "app.log")
    worker = None
    try:
        worker = processes.start_worker(env, directory / "worker.log")
        processes.wait_until_up(app, base + "/perf/health")
        if (why := worker.failed()) is not None:
            raise ConfigurationError("worker", why)
        say.serving(base, app.pid, worker.pid)
        doc = _measure(base, settings, prepared, load, say)
        doc["elapsed_s"] = round(time.perf_counter() - started, 1)
        say.table(doc)
        if args.json:
            Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
            say.line(f"wrote {args.json}")
        if args.markdown:
            Path(args.markdown).write_text(report.render_markdown(doc) + "\n")
            say.line(f"wrote {args.markdown}")
        if not args.no_serve:
            say.keep_serving(base, token)
            with contextlib.suppress(KeyboardInterrupt):
                app.proc.wait()
    finally:
        for child in (worker, app):
            if child is not None:
                child.stop()
    return 0


async def _prepare(settings: Any) -> dict[str, Any]:
    """Seed (or reuse) the data, forget cached values from an earlier run, pick the demo's organization."""
    from sqlalchemy import delete, select

    from perfkit.demo.app import runtime
    from perfkit.demo.app.models import Base, Notification, Ticket
    from perfkit.demo.app.seed import seed

    engine = runtime.sync_engine(settings)
    try:
        volume, seconds, reused = await asyncio.to_thread(seed, engine, settings.scale)
        Base.metadata.create_all(engine)  # tables added since that database was seeded
        org = 3
        with engine.begin() as conn:
            conn.execute(delete(Notification))
            assignee = conn.execute(
                select(Ticket.assignee_id)
                .where(
                    Ticket.organization_id == org, Ticket.status == "open", Ticket.assignee_id.is_not(None)
                )
                .order_by(Ticket.id)
                .limit(1)
            ).scalar_one()
    finally:
        engine.dispose()
    cache = runtime.cache(settings)
    try:
        await cache.clear()  # the data may have been seeded again since those values were cached
    finally:
        await cache.close()
    return {
        "volume": volume,
        "seed_seconds": round(seconds, 1),
        "reused": reused,
        "org": org,
        "assignee": assignee,
    }


def _measure(base: str, settings: Any, prepared: dict[str, Any], load: Any, say: Any) -> dict[str, Any]:
    import httpx

    from perfkit.demo import checks, measure

    headers = {"Authorization": f"Bearer {settings.token}"}
    with httpx.Client(base_url=base, headers=headers, timeout=60.0) as client:
        rows = []
        for pair in measure.pairs(prepared["org"], prepared["assignee"]):
            say.measuring(pair)
            rows.append(measure.measure_pair(client, base, pair, load))
        verified = checks.run_all(client, prepared["org"])
        monitoring = checks.monitoring_report(client)
    volume = prepared["volume"]
    return {
        "perfkit_demo": 1,
        "machine": _machine(),
        "stores": {
            "database": settings.database_url.split("://", 1)[0],
            "cache": settings.cache_url.split("://", 1)[0],
            "jobs": settings.jobs_url.split("://", 1)[0],
        },
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
    }


def _machine() -> dict[str, Any]:
    import platform

    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(terse=True),
        "argv": sys.argv[1:],
    }
