"""The load loops for a URL target: one coroutine per connection, in the open or the closed model.

Open model: each connection loop claims the next arrival slot n, waits until its intended time
(unless it is already late: then it sends at once, and the lateness counts in the corrected latency),
sends, waits for the response and records it. At most one slot per connection is claimed ahead, as in
wrk2. Closed model: each user owns a connection and sends back to back. Both stop at the end of the
schedule, at the request cap, or when the run's `Stop` says so (its end, or Ctrl-C): a server slower
than the rate cannot stretch the run, the arrivals it left unsent are counted as dropped. Requests in
flight are awaited for at most the timeout, so every request sent is recorded exactly once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from perfkit.bench.client import Connection, HttpProtocolError, RawResponse, open_connection
from perfkit.bench.plan import Plan
from perfkit.bench.recorder import NameStats, Recorder
from perfkit.bench.scheduler import ArrivalSchedule, Stage, UserSchedule
from perfkit.bench.stop import Stop


class RequestTimeout(TimeoutError):
    """The response did not arrive within the request timeout."""


class Sweeper:
    """Aborts requests older than the timeout; one periodic task instead of a timer per request."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.connections: set[Connection] = set()

    async def run(self) -> None:
        period = min(0.1, self.timeout / 4)
        while True:
            await asyncio.sleep(period)
            now = time.perf_counter()
            for conn in list(self.connections):
                if conn.busy and now - conn.sent_at > self.timeout:
                    conn.abort(RequestTimeout(f"no response within {self.timeout:g}s"))


async def send(
    conn: Connection | None,
    plan: Plan,
    data: bytes,
    rec: Recorder,
    st: NameStats,
    intended: float,
    sweeper: Sweeper,
    no_body: bool = False,
) -> Connection | None:
    """Send one request (opening a connection if needed), record the outcome, return the connection."""
    perf = time.perf_counter
    rec.sent += 1
    try:
        if conn is None or conn.closed:
            if conn is not None:
                sweeper.connections.discard(conn)
            conn = await asyncio.wait_for(
                open_connection(plan.endpoint.host, plan.endpoint.port), plan.timeout
            )
            sweeper.connections.add(conn)
        now = perf()
        resp: RawResponse = await conn.request(data, now, no_body)
    except asyncio.CancelledError:  # the run's bound is reached: the request counts as timed out
        rec.error(st, "timeout", perf())
        if conn is not None:
            conn.close()
        raise
    except TimeoutError:
        rec.error(st, "timeout", perf())
        return conn
    except HttpProtocolError:
        rec.error(st, "protocol", perf())
        return conn
    except ConnectionError:
        rec.error(st, "connection", perf())
        return conn
    except OSError:
        rec.error(st, "connection", perf())
        return conn
    rec.record(st, resp.status, intended if intended < now else now, now, perf())
    return conn


async def open_loop(
    plan: Plan, rec: Recorder, schedule: ArrivalSchedule, slots: list[int], sweeper: Sweeper, stop: Stop
) -> None:
    """One connection of the open model; `slots[0]` is the shared next-arrival counter."""
    assert plan.target is not None  # the caller dispatches URL plans only
    data = plan.target.raw
    head = plan.target.method == "HEAD"  # the response to a HEAD has no body, whatever its headers say
    st = rec.stats(plan.target.name)
    start = rec.start
    conn: Connection | None = None
    try:
        while True:
            n = slots[0]
            if n >= plan.max_requests:
                return
            due = schedule.time_of(n)
            if due is None or start + due >= stop.end:
                return
            slots[0] = n + 1
            intended = start + due
            if not await stop.sleep_until(intended):
                return  # the run is over: this arrival (and every later one) is dropped
            conn = await send(conn, plan, data, rec, st, intended, sweeper, head)
    finally:
        if conn is not None:
            sweeper.connections.discard(conn)
            conn.close()


async def closed_user(
    plan: Plan,
    rec: Recorder,
    run_stop: Stop,
    counter: list[int],
    sweeper: Sweeper,
    stop: asyncio.Event | None,
) -> None:
    """One user of the closed model: requests back to back until the deadline or the cap."""
    assert plan.target is not None  # the caller dispatches URL plans only
    data = plan.target.raw
    head = plan.target.method == "HEAD"  # the response to a HEAD has no body, whatever its headers say
    st = rec.stats(plan.target.name)
    perf = time.perf_counter
    conn: Connection | None = None
    try:
        while perf() < run_stop.end and counter[0] < plan.max_requests and not (stop and stop.is_set()):
            counter[0] += 1
            conn = await send(conn, plan, data, rec, st, perf(), sweeper, head)
    finally:
        if conn is not None:
            sweeper.connections.discard(conn)
            conn.close()


async def run_url(plan: Plan, rec: Recorder, stop: Stop) -> None:
    """Drive a URL target for the whole plan, until `stop`; open-model arrivals left unsent are
    added to `rec.dropped`."""
    sweeper = Sweeper(plan.timeout)
    sweep = asyncio.create_task(sweeper.run())
    try:
        if plan.open_model:
            stages = list(plan.stages)
            if not stages:
                stages = [Stage(plan.duration, plan.rate or 0.0, True)]
            schedule = ArrivalSchedule(stages, plan.rate if plan.stages else None)
            slots = [0]
            loops = (
                open_loop(plan, rec, schedule, slots, sweeper, stop) for _ in range(plan.connection_count)
            )
            await stop.wait(asyncio.gather(*loops), plan.timeout)
            due = min(schedule.count_before(stop.end - rec.start), plan.max_requests)
            rec.dropped += max(due - rec.sent, 0)
        else:
            counter = [0]
            if not plan.stages:
                users = (closed_user(plan, rec, stop, counter, sweeper, None) for _ in range(plan.users))
                await stop.wait(asyncio.gather(*users), plan.timeout)
            else:
                ramp = UserSchedule(list(plan.stages), plan.users)
                await stop.wait(
                    ramp_users(
                        ramp, lambda ev: closed_user(plan, rec, stop, counter, sweeper, ev), rec.start, stop
                    ),
                    plan.timeout,
                )
    finally:
        sweep.cancel()


async def ramp_users(
    schedule: UserSchedule,
    make_user: Callable[[asyncio.Event], Awaitable[None]],
    start: float,
    stop: Stop,
) -> None:
    """Start and stop users every 100 ms to follow the closed model's stages, until `stop.end`."""
    running: list[tuple[asyncio.Task[None], asyncio.Event]] = []
    while (now := time.perf_counter()) < min(start + schedule.duration, stop.end):
        want = schedule.users_at(now - start)
        running = [(t, e) for t, e in running if not t.done()]
        active = [(t, e) for t, e in running if not e.is_set()]
        for _ in range(want - len(active)):
            event = asyncio.Event()
            running.append((asyncio.ensure_future(make_user(event)), event))
        for _, event in active[want:] if want < len(active) else []:
            event.set()
        await asyncio.sleep(0.1)
    for _, event in running:
        event.set()
    try:
        await asyncio.gather(*(t for t, _ in running))
    finally:  # cancelled at the run's bound: the users go with it
        for task, _ in running:
            task.cancel()
