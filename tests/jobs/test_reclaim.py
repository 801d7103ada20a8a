"""A worker that claims again a job it still runs (its lease lapsed, say while its event loop was blocked,
and another worker's sweep queued the job again) runs one task of that job at a time, on every backend."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from perfkit.jobs import Context, JobQueue, Status, Worker
from perfkit.jobs.models import JobRecord, Outcome

from .conftest import EventLog

QUEUE = "reclaim"


def spy_on_claims(jobs: JobQueue, job_id: str, gate: asyncio.Event | None = None) -> asyncio.Event:
    """An event set once a claim of `jobs`' backend returns `job_id` as its second attempt; while `gate`
    is clear, what claims return waits for it (a claim already under way when it closed too)."""
    reclaimed = asyncio.Event()
    backend = jobs.backend
    claim = backend.claim

    async def claiming(*args: Any, **kwargs: Any) -> list[JobRecord]:
        records = await claim(*args, **kwargs)
        if gate is not None:
            await gate.wait()
        if any(r.id == job_id and r.token == 2 for r in records):
            reclaimed.set()
        return records

    backend.claim = claiming  # type: ignore[method-assign]
    return reclaimed


def spy_on_outcomes(jobs: JobQueue) -> set[tuple[str, int]]:
    """The (job id, token) of the outcomes `jobs`' backend is asked to record, by `finish` or riding on
    a claim (which may hand them on to `finish`: a set, so each is there once)."""
    recorded: set[tuple[str, int]] = set()
    backend = jobs.backend
    claim, finish = backend.claim, backend.finish

    async def claiming(
        queues: Sequence[str], limit: int, lease: float, now: float, acks: Sequence[Outcome] = ()
    ) -> list[JobRecord]:
        recorded.update((o.id, o.token) for o in acks)
        return await claim(queues, limit, lease, now, acks)

    async def finishing(outcomes: Sequence[Outcome]) -> None:
        recorded.update((o.id, o.token) for o in outcomes)
        await finish(outcomes)

    backend.claim, backend.finish = claiming, finishing  # type: ignore[method-assign]
    return recorded


async def sweep(other: JobQueue) -> None:
    """Another worker's sweep, once the lease has lapsed: the job is queued again."""
    assert await other.backend.reap([QUEUE], time.time() + 60) == []


# the lease keeper renews at start, then not for 30 s: each test decides when a heartbeat happens
WORKER: dict[str, Any] = {"concurrency": 2, "heartbeat": 30, "idle_wait": 0.02, "grace": 5}


class Held:
    """A task of `jobs` that signals `entered`, then runs until `release`; each run's Context in `runs`,
    its result the number of runs so far."""

    def __init__(self, jobs: JobQueue) -> None:
        self.entered, self.release = asyncio.Event(), asyncio.Event()
        self.runs: list[Context] = []

        @jobs.task(queue=QUEUE)
        async def slow(ctx: Context) -> int:
            self.runs.append(ctx)
            self.entered.set()
            await self.release.wait()
            return len(self.runs)

        self.task = slow


@contextlib.asynccontextmanager
async def running(jobs: JobQueue) -> AsyncIterator[Worker]:
    """A worker of `jobs` on the queue (`WORKER`'s settings), stopped and awaited on the way out."""
    worker = jobs.worker([QUEUE], **WORKER)
    run = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        worker.stop()
        await asyncio.wait_for(run, 10)


async def test_a_job_claimed_again_while_it_runs_keeps_its_one_task(
    make_queue: Callable[..., JobQueue],
) -> None:
    """The running task carries on under the new lease (its heartbeats keep it) and its outcome is
    recorded once, as the new attempt, with the new lease's token; its `ctx.attempt` is the new
    attempt's number too; no second task of the job starts."""
    jobs, other = make_queue(lease=30), make_queue(lease=30)
    events = EventLog(jobs)
    held = Held(jobs)
    runs, entered, release = held.runs, held.entered, held.release
    info = await held.task.enqueue()
    recorded = spy_on_outcomes(jobs)
    reclaimed = spy_on_claims(jobs, info.id)
    async with running(jobs) as worker:
        await asyncio.wait_for(entered.wait(), 10)
        assert runs[0].attempt == 1
        await sweep(other)
        await asyncio.wait_for(reclaimed.wait(), 10)
        await worker.lease.renew_once()  # a heartbeat now renews the new lease: nothing is stopped
        assert not runs[0].cancelled
        assert (runs[0].attempt, worker.running[info.id].record.attempts) == (2, 2)
        release.set()
        await events.wait("succeeded", info.id)
    done = await jobs.get(info.id)
    assert done is not None
    assert len(runs) == 1
    assert recorded == {(info.id, 2)}
    assert (done.status, done.result, done.attempts) == (Status.SUCCEEDED, 1, 2)
    assert events.names(info.id) == ["enqueued", "started", "succeeded"]
    assert events.events[-1].attempt == 2


async def test_a_heartbeat_racing_the_claim_again_stops_nothing(make_queue: Callable[..., JobQueue]) -> None:
    """A renewal sent with the old token, answered after the job was claimed again, neither cancels nor
    drops the job: its new lease is this worker's."""
    jobs, other = make_queue(lease=30), make_queue(lease=30)
    events = EventLog(jobs)
    held = Held(jobs)
    runs, entered, release = held.runs, held.entered, held.release
    info = await held.task.enqueue()
    reclaimed = spy_on_claims(jobs, info.id)
    renew = jobs.backend.renew
    sent: list[Sequence[tuple[str, int]]] = []

    async def late_renew(leases: Sequence[tuple[str, int]], lease: float, now: float) -> set[str]:
        sent.append(leases)
        await reclaimed.wait()  # the renewal left before the claim and is answered after it
        return await renew(leases, lease, now)

    async with running(jobs) as worker:
        await asyncio.wait_for(entered.wait(), 10)
        jobs.backend.renew = late_renew  # type: ignore[method-assign]
        heartbeat = asyncio.create_task(worker.lease.renew_once())
        await sweep(other)
        await asyncio.wait_for(heartbeat, 10)
        assert sent == [[(info.id, 1)]]
        assert not runs[0].cancelled
        release.set()
        await events.wait("succeeded", info.id)
    done = await jobs.get(info.id)
    assert done is not None
    assert len(runs) == 1
    assert (done.status, done.result, done.attempts) == (Status.SUCCEEDED, 1, 2)


async def test_a_job_claimed_again_while_its_attempt_stops_waits_for_it(
    make_queue: Callable[..., JobQueue],
) -> None:
    """An attempt already stopping as lost (its task is still cleaning up) when the job is claimed again:
    the new attempt starts once the old task has ended, never beside it, and the worker holds (renews)
    the new attempt's lease while it runs."""
    jobs, other = make_queue(lease=30), make_queue(lease=30)
    events = EventLog(jobs)
    entered, cleaned = asyncio.Event(), asyncio.Event()
    runs: list[int] = []
    tokens: list[int | None] = []  # the lease the worker holds for the job, as attempt 2 runs

    @jobs.task(queue=QUEUE)
    async def slow(ctx: Context) -> int:
        runs.append(ctx.attempt)
        if ctx.attempt == 2:
            held = worker.running.get(ctx.job_id)
            tokens.append(None if held is None else held.record.token)
        if ctx.attempt == 1:
            entered.set()
            try:
                await asyncio.Event().wait()  # until the worker stops this attempt
            finally:
                await cleaned.wait()  # a cleanup that takes a while
        return ctx.attempt

    info = await slow.enqueue()
    claims = asyncio.Event()
    claims.set()
    reclaimed = spy_on_claims(jobs, info.id, claims)
    async with running(jobs) as worker:  # the task above reads `worker` once attempt 2 runs
        await asyncio.wait_for(entered.wait(), 10)
        claims.clear()  # the worker gets no claim's answer until attempt 1 is stopping
        await sweep(other)
        await worker.lease.renew_once()  # the old lease is gone: attempt 1 is stopped as lost
        claims.set()
        await asyncio.wait_for(reclaimed.wait(), 10)
        cleaned.set()
        await events.wait("succeeded", info.id)
    done = await jobs.get(info.id)
    assert done is not None
    assert runs == [1, 2]
    assert tokens == [2]
    assert (done.status, done.result, done.attempts) == (Status.SUCCEEDED, 2, 2)
    assert events.names(info.id) == ["enqueued", "started", "interrupted", "started", "succeeded"]
