"""Running a plan: in this process, or split over worker processes whose results merge exactly.

Workers are started with the `spawn` method (no inherited event loop or sockets), import everything,
report ready, and are then given one common wall-clock start so their timelines line up second by
second and none loses part of the run to a slow start; and send back their recorder in wire
form (counts plus HdrHistogram's encoding), which the parent adds up. While they run, each worker
publishes four numbers (sent, completed, errors, recent p95) into shared memory for the live view.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import queue
import time
from collections.abc import Callable, MutableSequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from perfkit.bench.metrics import Recorder
from perfkit.bench.plan import Plan
from perfkit.errors import PerfkitError

LIVE_FIELDS = 4  # sent, completed, errors, p95 of the last full second (µs)
START_DELAY = 0.05  # single process: time zero is this far after setup
READY_TIMEOUT = 60.0  # worker processes: time to start and import before the run is abandoned


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
    plan: Plan, start_at: float | None = None, live: MutableSequence[float] | None = None, offset: int = 0
) -> Recorder:
    """Run `plan` in the running loop; `start_at` is the wall-clock time zero (default: now)."""
    from perfkit.bench.drivers import run_url

    scenario = None
    if plan.scenario is not None:
        from perfkit.bench.scenario import load_scenario

        scenario = load_scenario(plan.scenario)
    wall0 = start_at if start_at is not None else time.time() + START_DELAY
    start = time.perf_counter() + (wall0 - time.time())
    rec = Recorder(start, plan.open_model)
    if (wait := start - time.perf_counter()) > 0:
        await asyncio.sleep(wait)
    publisher = None
    if live is not None:

        async def publish() -> None:
            while True:
                _publish(rec, live, offset)
                await asyncio.sleep(0.25)

        publisher = asyncio.create_task(publish())
    try:
        if scenario is not None:
            from perfkit.bench.scenario_driver import run_scenario

            await run_scenario(plan, rec, scenario)
        else:
            await run_url(plan, rec)
    finally:
        if publisher is not None:
            publisher.cancel()
            _publish(rec, live, offset)  # type: ignore[arg-type]  # live is set when publisher is
    return rec


def _worker(plan: Plan, start_at: Any, go: Any, results: Any, live: Any, index: int) -> None:
    """A worker process: import and load everything, say ready, wait for the common start, run."""
    try:
        from perfkit.bench import drivers, scenario_driver  # noqa: F401 - imported before the start

        if plan.scenario is not None:
            from perfkit.bench.scenario import load_scenario

            load_scenario(plan.scenario)
        results.put((index, "ready", None))
        if not go.wait(READY_TIMEOUT):
            return
        with asyncio.Runner(loop_factory=_new_loop) as runner:
            rec = runner.run(run_async(plan, start_at.value, live, index * LIVE_FIELDS))
        results.put((index, "result", rec.to_wire()))
    except BaseException as exc:  # reported to the parent, which raises it
        results.put((index, "error", f"{type(exc).__name__}: {exc}"))


def run(plan: Plan, on_tick: Callable[[float, list[float]], None] | None = None) -> RunResult:
    """Run a plan to completion (this process when `plan.processes == 1`, else worker processes).

    `on_tick(elapsed, live)` is called about 4 times a second with the workers' live numbers.
    """
    from perfkit.bench.target import check_loopback

    check_loopback(plan.endpoint.host, plan.allow_remote)  # the library path is guarded as the CLI is
    started = datetime.now(UTC).isoformat(timespec="seconds")
    if plan.processes <= 1:
        return _run_here(plan, on_tick, started)
    return _run_processes(plan, on_tick, started)


def _run_here(plan: Plan, on_tick: Callable[[float, list[float]], None] | None, started: str) -> RunResult:
    live = [0.0] * LIVE_FIELDS

    async def main() -> Recorder:
        start_at = time.time() + START_DELAY
        ticker = None
        if on_tick is not None:

            async def tick() -> None:
                while True:
                    await asyncio.sleep(0.25)
                    on_tick(time.time() - start_at, live)

            ticker = asyncio.create_task(tick())
        try:
            return await run_async(plan, start_at, live if on_tick else None)
        finally:
            if ticker is not None:
                ticker.cancel()

    t0 = time.perf_counter()
    with asyncio.Runner(loop_factory=_new_loop) as runner:
        rec = runner.run(main())
    return RunResult(rec, started, time.perf_counter() - t0 - START_DELAY, 1)


def _run_processes(
    plan: Plan, on_tick: Callable[[float, list[float]], None] | None, started: str
) -> RunResult:
    """Start the workers, wait until all are ready, give them one start time, merge their results."""
    ctx = mp.get_context("spawn")
    n = plan.processes
    live = ctx.Array("d", LIVE_FIELDS * n, lock=False)
    results = ctx.Queue()
    start_at = ctx.Value("d", 0.0, lock=False)
    go = ctx.Event()
    procs = [
        ctx.Process(target=_worker, args=(plan.share(i), start_at, go, results, live, i), daemon=True)
        for i in range(n)
    ]
    for p in procs:
        p.start()
    ready: set[int] = set()
    wires: dict[int, dict[str, Any]] = {}
    errors: list[str] = []
    deadline = time.time() + READY_TIMEOUT
    try:
        while len(wires) + len(errors) < n:
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
        go.set()
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
                p.join()
    if errors:
        raise PerfkitError("; ".join(errors))
    merged = Recorder(0.0, plan.open_model)
    for i in sorted(wires):
        merged.merge_wire(wires[i])
    return RunResult(merged, started, max(time.time() - start_at.value, 0.0), n)
