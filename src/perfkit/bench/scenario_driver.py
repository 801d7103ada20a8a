"""Running a scenario: users (closed model) or iterations started at the arrival rate (open model)."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable
from typing import Any

from perfkit.bench.drivers import Sweeper, ramp_users
from perfkit.bench.metrics import Recorder
from perfkit.bench.plan import Plan
from perfkit.bench.pool import Pool
from perfkit.bench.scenario import Scenario, TaskFn, current_recorder
from perfkit.bench.scenario_client import RequestCapReached, ScenarioClient
from perfkit.bench.scheduler import ArrivalSchedule, Stage, UserSchedule

MAX_ITERATIONS = 10_000  # open model: iterations in flight at once; beyond it arrivals are dropped


class _Picker:
    def __init__(self, scenario: Scenario, seed: int | None = None) -> None:
        self.names = [name for name, _, _ in scenario.tasks]
        self.fns = [fn for _, fn, _ in scenario.tasks]
        self.weights = [w for _, _, w in scenario.tasks]
        self.rng = random.Random(seed)

    def pick(self) -> tuple[str, TaskFn]:
        i = self.rng.choices(range(len(self.fns)), weights=self.weights)[0]
        return self.names[i], self.fns[i]


async def _iteration(picker: _Picker, client: ScenarioClient, rec: Recorder) -> bool:
    """Run one picked task; False when the request cap stops the user."""
    name, fn = picker.pick()
    try:
        await fn(client)
    except RequestCapReached:
        return False
    except Exception:  # a bug or a failed assumption in the user's task: counted, the run goes on
        rec.check(f"{name} raised no exception", False)
    return True


async def run_scenario(plan: Plan, rec: Recorder, scenario: Scenario) -> None:
    current_recorder.set(rec)
    pool = Pool(plan.endpoint, plan.connection_count, plan.timeout)
    sweeper = Sweeper(plan.timeout)
    sweeper.connections = pool.connections
    sweep = asyncio.create_task(sweeper.run())
    picker = _Picker(scenario)
    cap = [0]
    try:
        if plan.open_model:
            await _open(plan, rec, picker, pool, cap)
        else:
            deadline = rec.start + plan.run_duration

            async def user(stop: asyncio.Event | None) -> None:
                client = ScenarioClient(pool, rec, cap, plan.max_requests)
                while time.perf_counter() < deadline and not (stop and stop.is_set()):
                    if not await _iteration(picker, client, rec):
                        return

            if plan.stages:
                await ramp_users(UserSchedule(list(plan.stages), plan.users), user, rec.start)
            else:
                await _bounded(
                    asyncio.gather(*(user(None) for _ in range(plan.users))), deadline + plan.timeout
                )
    finally:
        sweep.cancel()
        pool.close()


async def _open(plan: Plan, rec: Recorder, picker: _Picker, pool: Pool, cap: list[int]) -> None:
    stages = list(plan.stages) or [Stage(plan.duration, plan.rate or 0.0, True)]
    schedule = ArrivalSchedule(stages, plan.rate if plan.stages else None)
    running: set[asyncio.Task[bool]] = set()
    n = 0
    while cap[0] < plan.max_requests:
        due = schedule.time_of(n)
        if due is None:
            break
        n += 1
        intended = rec.start + due
        wait = intended - time.perf_counter()
        if wait > 0.0005:
            await asyncio.sleep(wait)
        if len(running) >= MAX_ITERATIONS:
            rec.dropped += 1
            continue
        client = ScenarioClient(pool, rec, cap, plan.max_requests, intended)
        t = asyncio.create_task(_iteration(picker, client, rec))
        running.add(t)
        t.add_done_callback(running.discard)
    if running:
        await _bounded(asyncio.gather(*running), time.perf_counter() + plan.timeout)


async def _bounded(aw: Awaitable[Any], deadline: float) -> None:
    """Wait for users until a deadline; stragglers (e.g. long think times) are cancelled."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(aw, max(deadline - time.perf_counter(), 0.01))
