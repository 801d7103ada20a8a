"""`perfkit worker MODULE:ATTR`: run a worker for the `JobQueue` found at MODULE:ATTR."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import signal
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from perfkit.errors import ConfigurationError

if TYPE_CHECKING:
    from perfkit.jobs.queue import JobQueue


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("app", metavar="MODULE:ATTR", help="where the JobQueue lives, e.g. myapp.tasks:jobs")
    add_worker_options(parser)


def add_worker_options(parser: argparse.ArgumentParser) -> None:
    """The worker's options (all but where the queue lives): `perfkit worker` and Django's
    `manage.py perfkit_worker` share them."""
    parser.add_argument(
        "--queues", help="comma-separated queues (default: every queue with a registered task)"
    )
    parser.add_argument("--concurrency", type=int, default=32, help="jobs run at once (default 32)")
    parser.add_argument(
        "--prefetch",
        type=int,
        default=None,
        help="jobs leased ahead of free slots (default: automatic, concurrency up to 32x it for jobs"
        " under 5 ms; 0 for long jobs)",
    )
    parser.add_argument("--burst", action="store_true", help="exit when the queues are empty")
    parser.add_argument("--grace", type=float, default=30.0, help="seconds running jobs get on SIGTERM (30)")
    parser.add_argument("--log-level", default="INFO", help="logging level (INFO)")


def load_queue(spec: str) -> object:
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigurationError("app", f"{spec!r} is not MODULE:ATTR (e.g. myapp.tasks:jobs)")
    if "" not in sys.path:
        sys.path.insert(0, "")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError("app", f"cannot import {module_name!r}: {exc}") from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ConfigurationError("app", f"module {module_name!r} has no attribute {attr!r}") from None


def run(args: argparse.Namespace) -> int:
    from perfkit.jobs.queue import JobQueue

    jobs = load_queue(args.app)
    if not isinstance(jobs, JobQueue):
        raise ConfigurationError("app", f"{args.app!r} is a {type(jobs).__name__}, not a JobQueue")
    return serve(jobs, args)


def serve(jobs: JobQueue, args: argparse.Namespace) -> int:
    """Run a worker for `jobs` with the options of `add_worker_options` until SIGTERM/SIGINT (or, with
    `--burst`, until the queues are empty); running jobs get `--grace` seconds to finish."""
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    queues = [q.strip() for q in args.queues.split(",") if q.strip()] if args.queues else None
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(_serve(jobs, queues, args))


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when it is installed (the `cli` extra brings it), as uvicorn does; else asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


async def _serve(jobs: object, queues: list[str] | None, args: argparse.Namespace) -> int:
    from perfkit.jobs.queue import JobQueue

    assert isinstance(jobs, JobQueue)  # checked by run(); narrows the type for mypy
    worker = jobs.worker(
        queues, concurrency=args.concurrency, prefetch=args.prefetch, burst=args.burst, grace=args.grace
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stop)  # a second signal hurries: see Worker.stop
    log = logging.getLogger("perfkit.jobs")
    log.info("worker %s on %r, queues %s, concurrency %d", worker.id, jobs, worker.queues, worker.concurrency)
    try:
        stats = await worker.run()
    finally:
        await jobs.close()
    log.info("worker %s stopped: %s", worker.id, stats)
    return 0
