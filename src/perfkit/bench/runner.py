"""Running a plan: in this process, or split over worker processes whose results merge exactly.

Workers are started with the `spawn` method (no inherited event loop or sockets), import everything,
report ready, and are then given one common wall-clock start so their timelines line up second by
second and none loses part of the run to a slow start; and send back their recorder in wire
form (counts plus HdrHistogram's encoding), which the parent adds up. While they run, each worker
publishes four numbers (sent, completed, errors, recent p95) into shared memory for the live view.

With `handle_sigint`, a first Ctrl-C or SIGTERM (a CI job's timeout, `kill`) stops the sending (in
every worker: they ignore both and follow the parent's `halt` event) and the run returns what it
measured, marked interrupted; a second one aborts at once (KeyboardInterrupt).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, MutableSequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from perfkit.bench.plan import Plan
from perfkit.bench.recorder import Recorder
from perfkit.bench.stop import Stop
from perfkit.errors import PerfkitError

LIVE_FIELDS = 4  # sent, completed, errors, p95 of the last full second (µs)
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)  # each ends a run early, its report kept
START_DELAY = 0.05  # single process: time zero is this far after setup
READY_TIMEOUT = 60.0  # worker processes: time to start and import before the run is abandoned
HALT_POLL = 0.1  # how often a run checks whether it was interrupted


@dataclass
class RunResult:
    """A finished run: the (merged) recorder, when it started and how long the load lasted."""

    recorder: Recorder
    started_at: str
    elapsed: float
    processes: int


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # optional: plain asyncio works, about half as fast
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def _publish(rec: Recorder, live: MutableSequence[float], offset: int) -> None:
    secs = rec.seconds
    recent = secs[-2] if len(secs) >= 2 else (secs[-1] if secs else None)
    live[offset] = rec.sent
    live[offset + 1] = rec.completed
    live[offset + 2] = sum(sum(st.errors.values()) for st in rec.names.values())
    live[offset + 3] = recent.latency.percentile(95) if recent is not None else 0.0


async def run_async(
    plan: Plan,
    start_at: float | None = None,
    live: MutableSequence[float] | None = None,
    offset: int = 0,
    halted: Callable[[], bool] | None = None,
) -> Recorder:
    """Run `plan` in the running loop; `start_at` is the wall-clock time zero (default: now).

    `halted()`, polled every 0.1 s, says the run was interrupted: sending stops, requests in flight
    get at most the timeout, and the recorder comes back with `interrupted` set.
    """
    from perfkit.bench.drivers import run_url

    scenario = None
    if plan.scenario is not None:
        from perfkit.bench.scenario import load_scenario

        scenario = load_scenario(plan.scenario)
    wall0 = start_at if start_at is not None else time.time() + START_DELAY
    start = time.perf_counter() + (wall0 - time.time())
    rec = Recorder(start, plan.open_model)
    stop = Stop(start + plan.run_duration)
    helpers: list[asyncio.Task[None]] = []
    if halted is not None:

        async def watch() -> None:
            while not halted():  # noqa: ASYNC110 - a flag set by a signal handler or another process
                await asyncio.sleep(HALT_POLL)
            stop.interrupt()

        helpers.append(asyncio.create_task(watch()))
    if (wait := start - time.perf_counter()) > 0:
        await asyncio.sleep(wait)
    if live is not None:

        async def publish() -> None:
            while True:
                _publish(rec, live, offset)
                await asyncio.sleep(0.25)

        helpers.append(asyncio.create_task(publish()))
    try:
        if not stop.interrupted:
            if scenario is not None:
                from perfkit.bench.scenario_driver import run_scenario

                await run_scenario(plan, rec, scenario, stop)
            else:
                await run_url(plan, rec, stop)
    finally:
        for helper in helpers:
            helper.cancel()
        if live is not None:
            _publish(rec, live, offset)
    rec.interrupted = stop.interrupted
    return rec


def _worker(plan: Plan, start_at: Any, go: Any, halt: Any, results: Any, live: Any, index: int) -> None:
    """A worker process: import and load everything, say ready, wait for the common start, run."""
    for signum in STOP_SIGNALS:  # Ctrl-C / SIGTERM reach the parent, which sets `halt`
        signal.signal(signum, signal.SIG_IGN)
    try:
        from perfkit.bench import drivers, scenario_driver  # noqa: F401 - imported before the start

        if plan.scenario is not None:
            from perfkit.bench.scenario import load_scenario

            load_scenario(plan.scenario)
        results.put((index, "ready", None))
        if not go.wait(READY_TIMEOUT):
            return
        with asyncio.Runner(loop_factory=_new_loop) as runner:
            rec = runner.run(run_async(plan, start_at.value, live, index * LIVE_FIELDS, halt.is_set))
        results.put((index, "result", rec.to_wire()))
    except BaseException as exc:  # reported to the parent, which raises it
        results.put((index, "error", f"{type(exc).__name__}: {exc}"))


def run(
    plan: Plan,
    on_tick: Callable[[float, list[float]], None] | None = None,
    *,
    handle_sigint: bool = False,
) -> RunResult:
    """Run a plan to completion (this process when `plan.processes == 1`, else worker processes).

    `on_tick(elapsed, live)` is called about 4 times a second with the workers' live numbers. With
    `handle_sigint` (main thread only), Ctrl-C ends the run early instead of losing it.
    """
    from perfkit.bench.target import check_loopback

    check_loopback(plan.endpoint.host, plan.allow_remote)  # the library path is guarded as the CLI is
    started = datetime.now(UTC).isoformat(timespec="seconds")
    handle_sigint = handle_sigint and threading.current_thread() is threading.main_thread()
    if plan.processes <= 1:
        return _run_here(plan, on_tick, started, handle_sigint)
    return _run_processes(plan, on_tick, started, handle_sigint)


def _say_interrupted(plan: Plan) -> None:
    print(
        f"perfkit bench: interrupted; waiting up to {plan.timeout:g}s for requests in flight, then the "
        "report (Ctrl-C again to abort)",
        file=sys.stderr,
        flush=True,
    )


@contextlib.contextmanager
def _loop_signals(loop: asyncio.AbstractEventLoop, handler: Callable[[], None] | None) -> Iterator[None]:
    """`handler` on the loop for every stop signal while the block runs (nothing when None)."""
    if handler is None:
        yield
        return
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, handler)
    try:
        yield
    finally:
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)


def _run_here(
    plan: Plan, on_tick: Callable[[float, list[float]], None] | None, started: str, handle_sigint: bool
) -> RunResult:
    live = [0.0] * LIVE_FIELDS
    interrupted = threading.Event()
    aborted = False

    async def main() -> Recorder:
        start_at = time.time() + START_DELAY
        loop = asyncio.get_running_loop()
        main_task = asyncio.current_task()
        ticker = None
        if on_tick is not None:

            async def tick() -> None:
                while True:
                    await asyncio.sleep(0.25)
                    on_tick(time.time() - start_at, live)

            ticker = asyncio.create_task(tick())

        def on_sigint() -> None:
            nonlocal aborted
            if interrupted.is_set() and main_task is not None:  # the second Ctrl-C: abort
                aborted = True
                main_task.cancel()
                return
            interrupted.set()
            _say_interrupted(plan)

        with _loop_signals(loop, on_sigint if handle_sigint else None):
            try:
                return await run_async(plan, start_at, live if on_tick else None, 0, interrupted.is_set)
            finally:
                if ticker is not None:
                    ticker.cancel()

    t0 = time.perf_counter()
    previous = {s: signal.getsignal(s) for s in STOP_SIGNALS} if handle_sigint else {}
    try:
        with asyncio.Runner(loop_factory=_new_loop) as runner:
            rec = runner.run(main())
    except asyncio.CancelledError:
        if aborted:
            raise KeyboardInterrupt from None
        raise
    finally:
        for signum, handler in previous.items():
            if handler is not None:
                signal.signal(signum, handler)
    return RunResult(rec, started, time.perf_counter() - t0 - START_DELAY, 1)


# C901: one supervision loop (ready, error, result, Ctrl-C, deadline) over the worker processes; splitting it
# would scatter the state they share
def _run_processes(  # noqa: C901
    plan: Plan, on_tick: Callable[[float, list[float]], None] | None, started: str, handle_sigint: bool
) -> RunResult:
    """Start the workers, wait until all are ready, give them one start time, merge their results."""
    ctx = mp.get_context("spawn")
    n = plan.processes
    live = ctx.Array("d", LIVE_FIELDS * n, lock=False)
    results = ctx.Queue()
    start_at = ctx.Value("d", 0.0, lock=False)
    go = ctx.Event()
    halt = ctx.Event()
    procs = [
        ctx.Process(target=_worker, args=(plan.share(i), start_at, go, halt, results, live, i), daemon=True)
        for i in range(n)
    ]
    interrupts = [0]  # set by the signal handler; the loop below relays it to the workers

    def on_sigint(signum: int, frame: object) -> None:
        interrupts[0] += 1
        if interrupts[0] > 1:
            raise KeyboardInterrupt
        _say_interrupted(plan)

    previous = {s: signal.signal(s, on_sigint) for s in STOP_SIGNALS} if handle_sigint else {}
    for p in procs:
        p.start()
    ready: set[int] = set()
    wires: dict[int, dict[str, Any]] = {}
    errors: list[str] = []
    deadline = time.time() + READY_TIMEOUT
    try:
        while len(wires) + len(errors) < n:
            if interrupts[0] and not halt.is_set():
                halt.set()
            if time.time() > deadline:
                raise PerfkitError("bench worker processes did not finish in time")
            try:
                index, kind, payload = results.get(timeout=0.25)
            except queue.Empty:
                if on_tick is not None and go.is_set():
                    on_tick(time.time() - start_at.value, list(live))
                if not any(p.is_alive() for p in procs) and results.empty():
                    raise PerfkitError("a bench worker process died without a result") from None
                continue
            if kind == "ready":
                ready.add(index)
                if len(ready) == n:  # everyone imported: start together, shortly
                    start_at.value = time.time() + START_DELAY
                    go.set()
                    deadline = start_at.value + plan.run_duration + plan.timeout + 30
            elif kind == "error":
                errors.append(f"worker {index}: {payload}")
                go.set()  # let the others run (their results are discarded) rather than hang
            else:
                wires[index] = payload
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        halt.set()  # a worker still running (an error above) stops sending at once
        go.set()
        grace = 0.0 if interrupts[0] > 1 else 5.0  # a second Ctrl-C aborts: no waiting for the workers
        for p in procs:
            p.join(timeout=grace)
            if p.is_alive():
                p.kill()
                p.join()
    if errors:
        raise PerfkitError("; ".join(errors))
    merged = Recorder(0.0, plan.open_model)
    for i in sorted(wires):
        merged.merge_wire(wires[i])
    elapsed = time.time() - start_at.value if start_at.value else 0.0  # 0: interrupted before the start
    return RunResult(merged, started, max(elapsed, 0.0), n)
