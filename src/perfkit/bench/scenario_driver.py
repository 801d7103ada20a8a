"""Running a scenario: users (closed model) or iterations started at the arrival rate (open model)."""

from __future__ import annotations

import asyncio
import random
import time
import traceback
from pathlib import Path

from perfkit.bench.drivers import Sweeper, ramp_users
from perfkit.bench.plan import Plan
from perfkit.bench.pool import Pool
from perfkit.bench.recorder import Recorder
from perfkit.bench.scenario import Scenario, TaskFn, current_recorder
from perfkit.bench.scenario_client import ScenarioClient, StopUser
from perfkit.bench.scheduler import ArrivalSchedule, Stage, UserSchedule
from perfkit.bench.stop import Stop

MAX_ITERATIONS = 10_000  # open model: iterations in flight at once; beyond it arrivals are dropped


def describe_exception(exc: BaseException, scenario_path: str) -> str:
    """`Type: message (file:line)`, the line being the scenario's own (else the innermost frame)."""
    frames = traceback.extract_tb(exc.__traceback__)
    target = str(Path(scenario_path).resolve())
    mine = [f for f in frames if f.filename and str(Path(f.filename).resolve()) == target]
    where = (mine or frames)[-1] if frames else None
    message = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    text = type(exc).__name__ + (f": {message}" if message else "")
    return f"{text} ({Path(where.filename).name}:{where.lineno})" if where else text


class _Picker:
    def __init__(self, scenario: Scenario, seed: int | None = None) -> None:
        self.path = scenario.path
        self.names = [name for name, _, _ in scenario.tasks]
        self.fns = [fn for _, fn, _ in scenario.tasks]
        self.weights = [w for _, _, w in scenario.tasks]
        self.rng = random.Random(seed)

    def pick(self) -> tuple[str, TaskFn]:
        i = self.rng.choices(range(len(self.fns)), weights=self.weights)[0]
        return self.names[i], self.fns[i]


async def _iteration(picker: _Picker, client: ScenarioClient, rec: Recorder) -> bool:
    """Run one picked task; False when the request cap or the run's end stops the user."""
    name, fn = picker.pick()
    try:
        await fn(client)
    except StopUser:
        return False
    except Exception as exc:  # a bug or a failed assumption in the user's task: counted, the run goes on
        rec.check(f"{name} raised no exception", False)
        rec.task_run(name, describe_exception(exc, picker.path))
        return True
    rec.task_run(name, None)
    return True


async def run_scenario(plan: Plan, rec: Recorder, scenario: Scenario, stop: Stop) -> None:
    """Run a scenario until `stop`; open-model arrivals left unsent are added to `rec.dropped`."""
    current_recorder.set(rec)
    pool = Pool(plan.endpoint, plan.connection_count, plan.timeout)
    sweeper = Sweeper(plan.timeout)
    sweeper.connections = pool.connections
    sweep = asyncio.create_task(sweeper.run())
    picker = _Picker(scenario)
    cap = [0]
    try:
        if plan.open_model:
            await _open(plan, rec, picker, pool, cap, stop)
        else:

            async def user(ev: asyncio.Event | None) -> None:
                client = ScenarioClient(pool, rec, cap, plan.max_requests, stop)
                while time.perf_counter() < stop.end and not (ev and ev.is_set()):
                    if not await _iteration(picker, client, rec):
                        return

            if plan.stages:
                ramp = UserSchedule(list(plan.stages), plan.users)
                await stop.wait(ramp_users(ramp, user, rec.start, stop), plan.timeout)
            else:
                await stop.wait(asyncio.gather(*(user(None) for _ in range(plan.users))), plan.timeout)
    finally:
        sweep.cancel()
        pool.close()


async def _open(plan: Plan, rec: Recorder, picker: _Picker, pool: Pool, cap: list[int], stop: Stop) -> None:
    stages = list(plan.stages) or [Stage(plan.duration, plan.rate or 0.0, True)]
    schedule = ArrivalSchedule(stages, plan.rate if plan.stages else None)
    running: set[asyncio.Task[bool]] = set()
    n = started = 0
    while cap[0] < plan.max_requests:
        due = schedule.time_of(n)
        if due is None or rec.start + due >= stop.end:
            break
        intended = rec.start + due
        if not await stop.sleep_until(intended):
            break
        n += 1
        if len(running) >= MAX_ITERATIONS:
            await asyncio.sleep(0)  # late and full: let the iterations in flight progress
            continue
        client = ScenarioClient(pool, rec, cap, plan.max_requests, stop, intended)
        t = asyncio.create_task(_iteration(picker, client, rec))
        started += 1
        running.add(t)
        t.add_done_callback(running.discard)
        if intended < time.perf_counter() - 0.001:
            await asyncio.sleep(0)  # behind the schedule: start the iteration before the next arrival
    capped = cap[0] >= plan.max_requests
    due_total = n if capped else max(n, schedule.count_before(stop.end - rec.start))
    rec.dropped += due_total - started
    if running:
        await stop.wait(asyncio.gather(*running), plan.timeout)
