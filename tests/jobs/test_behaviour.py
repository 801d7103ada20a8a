"""The job queue's behaviour, pinned once and run on every backend (SQLite, PostgreSQL, Redis)."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable, Sequence

import pytest

from perfkit.errors import ConfigurationError, SerializationError, ValueTooLargeError
from perfkit.jobs import Context, JobQueue, Priority, Status
from perfkit.jobs.models import JobRecord, Outcome, new_job_id
from perfkit.jobs.scheduler import tick

from .conftest import REDIS_URL, EventLog, _redis_reachable, drop_backend_data, unique


async def run_burst(jobs: JobQueue, **options: object) -> None:
    await jobs.worker(burst=True, **options).run()  # type: ignore[arg-type]


async def test_enqueue_run_and_get(jobs: JobQueue) -> None:
    """A job runs once and its record shows status, result, attempts and timestamps."""

    @jobs.task(queue="email")
    async def send(ctx: Context, to: str) -> str:
        return f"sent to {to}"

    job = await send.enqueue("a@example.com")
    assert job.status is Status.QUEUED
    await run_burst(jobs)
    info = await jobs.get(job.id)
    assert info is not None
    assert (info.status, info.result, info.attempts, info.type) == (
        Status.SUCCEEDED,
        "sent to a@example.com",
        1,
        send.name,
    )
    assert info.args == ("a@example.com",)
    assert info.queued_at <= (info.started_at or 0) <= (info.completed_at or 0)
    assert info.progress == 1.0


async def test_strict_priority_fifo_within_priority(jobs: JobQueue) -> None:
    """Critical runs before high before medium before low; FIFO within one priority."""
    order: list[tuple[str, int]] = []

    @jobs.task(queue="prio")
    async def record(ctx: Context, prio: str, n: int) -> None:
        order.append((prio, n))

    for n in range(3):
        for prio in ("low", "medium", "high", "critical"):
            await record.enqueue(prio, n, priority=prio)
    await run_burst(jobs, concurrency=1)
    expected = [(p, n) for p in ("critical", "high", "medium", "low") for n in range(3)]
    assert order == expected


async def test_retries_until_success(jobs: JobQueue) -> None:
    """A failing job is retried with its backoff and succeeds on a later attempt."""
    calls: list[int] = []

    @jobs.task(queue="flaky", retries=3, backoff=0)
    async def flaky(ctx: Context) -> int:
        calls.append(ctx.attempt)
        if len(calls) < 3:
            raise RuntimeError("transient")
        return ctx.attempt

    job = await flaky.enqueue()
    await run_burst(jobs)
    info = await jobs.get(job.id)
    assert info is not None
    assert (info.status, info.result, info.attempts, calls) == (Status.SUCCEEDED, 3, 3, [1, 2, 3])


async def test_dead_letter_keeps_error_and_retry_brings_it_back(jobs: JobQueue, events: EventLog) -> None:
    """After the last attempt the job is failed with error and traceback; retry() runs it again."""
    fail = [True]

    @jobs.task(queue="dlq", retries=1, backoff=0)
    async def boom(ctx: Context) -> str:
        if fail[0]:
            raise ValueError("no luck")
        return "ok"

    job = await boom.enqueue()
    await run_burst(jobs)
    info = await jobs.get(job.id)
    assert info is not None
    assert info.status is Status.FAILED
    assert info.attempts == 2
    assert info.error == "ValueError: no luck"
    assert "raise ValueError" in (info.traceback or "")
    assert events.names(job.id).count("failed") == 2
    assert "dead" in events.names(job.id)
    fail[0] = False
    again = await jobs.retry(job.id)
    assert again is not None
    assert (again.id, again.status, again.attempts, again.error) == (job.id, Status.QUEUED, 0, info.error)
    assert await jobs.retry(job.id) is None  # queued already: nothing to retry
    await run_burst(jobs)
    info = await jobs.get(job.id)
    assert info is not None
    assert (info.status, info.result) == (Status.SUCCEEDED, "ok")


async def test_async_timeout_counts_as_failed_attempt(jobs: JobQueue) -> None:
    """An async job past its timeout is cancelled and the attempt fails with a timeout error."""

    @jobs.task(queue="slowq", timeout=0.2)
    async def slow(ctx: Context) -> None:
        await asyncio.Event().wait()

    job = await slow.enqueue()
    await run_burst(jobs)
    info = await jobs.get(job.id)
    assert info is not None
    assert info.status is Status.FAILED
    assert "timed out after 0.2s" in (info.error or "")


async def test_sync_task_runs_off_the_event_loop(jobs: JobQueue) -> None:
    """A plain function runs on a worker thread and can report progress."""
    loop_thread = threading.get_ident()

    @jobs.task(queue="sync")
    def crunch(ctx: Context, n: int) -> dict[str, int]:
        ctx.progress_sync(0.5, "halfway")
        return {"n": n * 2, "same_thread": int(threading.get_ident() == loop_thread)}

    job = await crunch.enqueue(21)
    await run_burst(jobs)
    info = await jobs.get(job.id)
    assert info is not None
    assert info.result == {"n": 42, "same_thread": 0}
    assert info.progress_message == "halfway"


async def test_sync_timeout_is_abandoned_and_reported(jobs: JobQueue) -> None:
    """A sync job past its timeout is abandoned on its thread and reported as a failed attempt."""
    release = threading.Event()

    @jobs.task(queue="sync", timeout=0.2)
    def stuck(ctx: Context) -> None:
        release.wait(5)

    job = await stuck.enqueue()
    try:
        await run_burst(jobs)
    finally:
        release.set()
    info = await jobs.get(job.id)
    assert info is not None
    assert info.status is Status.FAILED
    assert "abandoned" in (info.error or "")


async def test_cancel_queued_job_never_runs(jobs: JobQueue) -> None:
    """A cancelled queued job is never run and is reported as cancelled."""
    ran: list[int] = []

    @jobs.task(queue="c")
    async def work(ctx: Context) -> None:
        ran.append(1)

    job = await work.enqueue()
    cancelled = await jobs.cancel(job.id)
    assert cancelled is not None
    assert cancelled.status is Status.CANCELLED
    await run_burst(jobs)
    info = await jobs.get(job.id)
    assert info is not None
    assert info.status is Status.CANCELLED
    assert ran == []


async def test_cancel_running_job_cooperatively(jobs: JobQueue, events: EventLog) -> None:
    """A running job is cancelled within a heartbeat and reported as cancelled."""
    started = asyncio.Event()

    @jobs.task(queue="c")
    async def forever(ctx: Context) -> None:
        started.set()
        await asyncio.Event().wait()

    job = await forever.enqueue()
    worker = jobs.worker(heartbeat=0.05)
    run = asyncio.create_task(worker.run())
    try:
        async with asyncio.timeout(10):
            await started.wait()
        info = await jobs.cancel(job.id)
        assert info is not None
        assert info.status is Status.RUNNING
        assert info.cancel_requested
        await events.wait("cancelled", job.id)
        await worker._flush()
    finally:
        worker.stop()
        await run
    info = await jobs.get(job.id)
    assert info is not None
    assert info.status is Status.CANCELLED


async def test_idempotency_key_returns_the_held_job(jobs: JobQueue) -> None:
    """Enqueueing with a key held by a queued job returns that job; once done, the key is free."""

    @jobs.task(queue="idem")
    async def charge(ctx: Context, amount: int) -> int:
        return amount

    first = await charge.enqueue(10, key="order-1")
    again = await charge.enqueue(99, key="order-1")
    assert again.id == first.id
    assert again.args == (10,)
    await run_burst(jobs)
    later = await charge.enqueue(5, key="order-1")
    assert later.id != first.id


async def test_delayed_job_is_scheduled_then_runs(jobs: JobQueue, events: EventLog) -> None:
    """A job enqueued with delay= is 'scheduled' until its time, then runs."""

    @jobs.task(queue="later")
    async def later(ctx: Context) -> str:
        return "done"

    job = await later.enqueue(delay=0.4)
    info = await jobs.get(job.id)
    assert info is not None
    assert info.status is Status.SCHEDULED
    await run_burst(jobs)  # nothing due yet: a burst worker leaves at once
    assert "started" not in events.names(job.id)
    worker = jobs.worker(idle_wait=0.05)
    run = asyncio.create_task(worker.run())
    try:
        await events.wait("succeeded", job.id)
    finally:
        worker.stop()
        await run
    info = await jobs.get(job.id)
    assert info is not None
    assert info.status is Status.SUCCEEDED
    assert (info.started_at or 0) >= job.run_at


async def test_progress_is_visible_while_running(jobs: JobQueue, events: EventLog) -> None:
    """Progress and its message reported by a running task are readable through get()."""
    go_on = asyncio.Event()

    @jobs.task(queue="p")
    async def export(ctx: Context) -> None:
        await ctx.progress(0.5, "halfway")
        await go_on.wait()

    job = await export.enqueue()
    worker = jobs.worker()
    run = asyncio.create_task(worker.run())
    try:
        await events.wait("progress", job.id)
        info = await jobs.get(job.id)
        assert info is not None
        assert (info.status, info.progress, info.progress_message) == (
            Status.RUNNING,
            0.5,
            "halfway",
        )
        go_on.set()
        await events.wait("succeeded", job.id)
    finally:
        worker.stop()
        await run
    with pytest.raises(ConfigurationError, match="progress"):
        await Context(
            jobs, JobRecord(id="p:1", queue="p", task="t", payload=b""), asyncio.get_running_loop()
        ).progress(2)


async def test_list_filters_and_paginates(jobs: JobQueue) -> None:
    """list() filters by status and queue, newest first, and pages with a cursor."""

    @jobs.task(queue="a")
    async def ta(ctx: Context, n: int) -> int:
        return n

    @jobs.task(queue="b")
    async def tb(ctx: Context, n: int) -> int:
        return n

    ids = [(await ta.enqueue(n)).id for n in range(5)]
    await tb.enqueue(0)
    page1, cursor = await jobs.list(status="queued", queue="a", limit=3)
    assert [j.id for j in page1] == ids[::-1][:3]
    assert cursor is not None
    page2, cursor2 = await jobs.list(status="queued", queue="a", limit=3, cursor=cursor)
    assert [j.id for j in page2] == ids[::-1][3:]
    assert cursor2 is None
    everything, _ = await jobs.list(limit=100)
    assert len(everything) == 6
    assert await jobs.list(status="failed", queue="a") == ([], None)
    with pytest.raises(ConfigurationError, match="status"):
        await jobs.list(status="exploded")


async def test_unknown_task_is_dead_lettered_without_crashing(make_queue: Callable[..., JobQueue]) -> None:
    """A stored job whose task no longer exists is dead with a clear error; the worker carries on."""
    producer, consumer = make_queue(), make_queue()

    @producer.task(queue="gone", name="old.task")
    async def old(ctx: Context) -> None: ...

    @consumer.task(queue="gone", name="new.task")
    async def new(ctx: Context) -> str:
        return "fine"

    stale = await old.enqueue()
    fresh = await consumer.enqueue("new.task")
    await run_burst(consumer)
    dead, ok = await consumer.get(stale.id), await consumer.get(fresh.id)
    assert dead is not None
    assert dead.status is Status.DEAD
    assert "unknown task 'old.task'" in (dead.error or "")
    assert ok is not None
    assert ok.status is Status.SUCCEEDED


async def test_bad_input_fails_at_enqueue(make_queue: Callable[..., JobQueue]) -> None:
    """Unserializable arguments and oversized payloads fail at enqueue, naming the task and the limit."""
    jobs = make_queue(max_payload="1KiB")

    @jobs.task(queue="x", name="t.bad")
    async def bad(ctx: Context, value: object) -> None: ...

    with pytest.raises(SerializationError, match=r"task 't.bad'.*msgpack"):
        await bad.enqueue(object())
    with pytest.raises(ValueTooLargeError, match=r"task 't.bad'.*max_payload=1024"):
        await bad.enqueue("x" * 5000)
    with pytest.raises(ConfigurationError, match="priority"):
        await bad.enqueue(1, priority="urgent")
    with pytest.raises(ConfigurationError, match="delay"):
        await bad.enqueue(1, delay="soon")
    assert await jobs.list() == ([], None)


async def test_hooks_and_depth(jobs: JobQueue, events: EventLog) -> None:
    """Hooks see enqueued/started/succeeded with durations; depth counts ready jobs per queue and priority."""

    @jobs.task(queue="h")
    async def hello(ctx: Context) -> None: ...

    await hello.enqueue(priority="high")
    await hello.enqueue(priority="high")
    await hello.enqueue(priority="low")
    assert await jobs.depth() == {("h", Priority.HIGH): 2, ("h", Priority.LOW): 1}
    await run_burst(jobs)
    assert events.names().count("enqueued") == 3
    assert events.names().count("succeeded") == 3
    done = [e for e in events.events if e.name == "succeeded"]
    assert all(e.duration is not None and e.duration >= 0 for e in done)
    assert await jobs.depth() == {}


async def test_retention_cleanup_removes_finished_jobs(make_queue: Callable[..., JobQueue]) -> None:
    """Finished jobs older than the retention are deleted; queued ones are kept."""
    jobs = make_queue(retention=0)

    @jobs.task(queue="r")
    async def quick(ctx: Context) -> None: ...

    done = await quick.enqueue()
    await run_burst(jobs)
    waiting = await quick.enqueue()
    assert await jobs.cleanup() >= 1
    assert await jobs.get(done.id) is None
    assert await jobs.get(waiting.id) is not None


async def test_lapsed_lease_is_requeued_as_new_attempt(jobs: JobQueue) -> None:
    """A job whose worker stopped renewing its lease runs again as a new attempt."""

    @jobs.task(queue="lease")
    async def work(ctx: Context) -> int:
        return ctx.attempt

    job = await work.enqueue()
    claimed = await jobs.backend.claim(["lease"], 10, 0.05, time.time())  # a worker that then "dies"
    assert [r.id for r in claimed] == [job.id]
    assert await jobs.backend.reap(["lease"], time.time() + 0.1) == []
    await run_burst(jobs)
    info = await jobs.get(job.id)
    assert info is not None
    assert (info.status, info.result, info.attempts) == (Status.SUCCEEDED, 2, 2)


async def test_stale_ack_after_lost_lease_is_ignored(jobs: JobQueue) -> None:
    """An outcome reported with a token that no longer holds the lease does not overwrite the job."""
    from perfkit.jobs.models import Outcome

    @jobs.task(queue="lease")
    async def work(ctx: Context) -> None: ...

    job = await work.enqueue()
    first = (await jobs.backend.claim(["lease"], 1, 0.05, time.time()))[0]
    await jobs.backend.reap(["lease"], time.time() + 0.1)
    second = (await jobs.backend.claim(["lease"], 1, 30, time.time()))[0]
    assert second.token == first.token + 1
    await jobs.backend.finish(
        [Outcome(job.id, first.token, Status.FAILED, error="stale", completed_at=time.time())]
    )
    info = await jobs.get(job.id)
    assert info is not None
    assert info.status is Status.RUNNING
    assert info.error is None
    assert await jobs.backend.renew([(job.id, first.token), (job.id + "x", 1)], 30, time.time()) == {
        job.id, job.id + "x",
    }  # fmt: skip


async def test_periodic_tick_runs_once_across_workers(make_queue: Callable[..., JobQueue]) -> None:
    """Two workers firing the same cron tick enqueue the periodic task once."""
    a, b = make_queue(), make_queue()
    for q in (a, b):
        q.periodic("*/5 * * * *", queue="cron", name="cleanup")(lambda ctx: None)
    when = 1_700_000_000.0
    results = await asyncio.gather(tick(a, a.periodic_tasks[0], when), tick(b, b.periodic_tasks[0], when))
    assert sorted(results) == [False, True]
    queued, _ = await a.list(queue="cron")
    assert [j.type for j in queued] == ["cleanup"]


async def test_graceful_stop_hands_running_jobs_back(jobs: JobQueue, events: EventLog) -> None:
    """A stop with no grace left hands running jobs back as queued, their attempt not counted."""

    @jobs.task(queue="g")
    async def long(ctx: Context) -> None:
        await asyncio.Event().wait()

    job = await long.enqueue()
    worker = jobs.worker(grace=0.05)
    run = asyncio.create_task(worker.run())
    await events.wait("started", job.id)
    worker.stop()
    stats = await run
    info = await jobs.get(job.id)
    assert stats.handed_back == 1
    assert info is not None
    assert (info.status, info.attempts) == (Status.QUEUED, 0)


async def test_job_ids_name_their_queue(jobs: JobQueue) -> None:
    """get() of an unknown or malformed id returns None or a clear error."""
    assert await jobs.get(new_job_id("nowhere")) is None
    with pytest.raises(ConfigurationError, match="job id"):
        await jobs.get("no-queue-here")


async def test_sync_facade_enqueues_and_reads(jobs: JobQueue) -> None:
    """The blocking facade enqueues, reads, lists and cancels through its own connection."""

    @jobs.task(queue="facade", name="facade.job")
    async def job(ctx: Context, n: int) -> int:
        return n

    with jobs.sync() as facade:
        info = facade.enqueue(job, 7, key="k7")
        assert facade.enqueue("facade.job", 8, key="k7").id == info.id
        got = facade.get(info.id)
        assert got is not None
        assert got.args == (7,)
        assert facade.depth() == {("facade", Priority.MEDIUM): 1}
        assert [j.id for j in facade.list(queue="facade")[0]] == [info.id]
        cancelled = facade.cancel(info.id)
        assert cancelled is not None
        assert cancelled.status is Status.CANCELLED
        retried = facade.retry(info.id)
        assert retried is not None
        assert retried.status is Status.QUEUED
    await run_burst(jobs)
    done = await jobs.get(info.id)
    assert done is not None
    assert done.result == 7


async def test_cancel_prefetched_job_never_starts(jobs: JobQueue, events: EventLog) -> None:
    """A job leased ahead (prefetched) and cancelled before a slot frees up never runs."""
    gate = asyncio.Event()
    ran: list[str] = []

    @jobs.task(queue="pre")
    async def step(ctx: Context, name: str) -> None:
        ran.append(name)
        if name == "first":
            await gate.wait()

    first = await step.enqueue("first")
    second = await step.enqueue("second")
    worker = jobs.worker(concurrency=1, prefetch=1, heartbeat=0.05)
    run = asyncio.create_task(worker.run())
    try:
        await events.wait("started", first.id)
        assert second.id in worker.running  # leased, waiting for the slot
        await jobs.cancel(second.id)
        async with asyncio.timeout(10):
            while worker.running[second.id].stop_reason is None:
                await asyncio.sleep(0.02)  # the heartbeat runs on its own clock
        gate.set()
        await events.wait("cancelled", second.id)
    finally:
        worker.stop()
        await run
    info = await jobs.get(second.id)
    assert info is not None
    assert info.status is Status.CANCELLED
    assert ran == ["first"]


async def test_idle_worker_on_two_queues_wakes_for_either(jobs: JobQueue, events: EventLog) -> None:
    """An idle worker serving two queues starts a job enqueued on either within its wake-up, not idle_wait."""

    @jobs.task(queue="first")
    async def one(ctx: Context) -> str:
        return "one"

    @jobs.task(queue="second")
    async def two(ctx: Context) -> str:
        return "two"

    idle = asyncio.Event()
    real_wait = jobs.backend.wait

    async def watched_wait(queues: list[str], timeout: float) -> None:
        idle.set()  # the worker found nothing and waits for a wake-up: the state under test
        await real_wait(queues, timeout)

    jobs.backend.wait = watched_wait  # type: ignore[method-assign]
    worker = jobs.worker(["first", "second"], idle_wait=3.0)  # a wake-up must not wait for the timeout
    run = asyncio.create_task(worker.run())
    try:
        async with asyncio.timeout(10):
            await idle.wait()
        started = time.monotonic()
        job2 = await two.enqueue()
        await events.wait("succeeded", job2.id, within=5)
        job1 = await one.enqueue()
        await events.wait("succeeded", job1.id, within=5)
        elapsed = time.monotonic() - started
    finally:
        worker.stop()
        await run
    assert elapsed < 2.0  # two wake-ups, neither waited for idle_wait
    results = [await jobs.get(job2.id), await jobs.get(job1.id)]
    assert [r.result for r in results if r is not None] == ["two", "one"]


def _odd_instants(count: int, lead_ms: int) -> list[float]:
    """UNIX times 0.9 ms into `count` consecutive milliseconds, starting `lead_ms` from now."""
    first = math.floor(time.time() * 1000) + lead_ms
    return [(first + n + 0.9) / 1000 for n in range(count)]


async def run_until(jobs: JobQueue, events: EventLog, name: str, count: int) -> None:
    """Run a worker that polls often (idle_wait 5 ms) until `count` `name` events were seen."""
    worker = jobs.worker(idle_wait=0.005)
    run = asyncio.create_task(worker.run())
    try:
        await events.wait(name, count=count, within=30)
    finally:
        worker.stop()
        await run


async def test_delayed_jobs_never_start_before_their_run_at(jobs: JobQueue, events: EventLog) -> None:
    """Jobs due 0.9 ms into a millisecond (at=) never start before their run_at, however it is stored."""

    @jobs.task(queue="punctual")
    async def due(ctx: Context) -> None:
        return None

    instants = _odd_instants(300, lead_ms=150)  # a job due in each of 300 consecutive milliseconds
    queued = await jobs.enqueue_many([due.prepare(at=at) for at in instants])
    await run_until(jobs, events, "succeeded", len(queued))
    infos = [await jobs.get(job.id) for job in queued]
    assert all(i is not None and i.status is Status.SUCCEEDED for i in infos)
    early = [
        (i.id, at - i.started_at) for i, at in zip(infos, instants, strict=True) if i and i.started_at < at
    ]
    assert early == []  # (id, how early) of each job that started before its time
    assert [i.run_at for i in infos if i] == instants  # the records keep the exact times asked for


async def test_retry_backoff_never_starts_before_its_run_at(jobs: JobQueue, events: EventLog) -> None:
    """A retry scheduled 0.9 ms into a millisecond never starts before that time, and keeps it exactly."""
    targets: list[float] = []

    def backoff(attempt: int) -> float:  # each retry due 0.9 ms into its own millisecond
        if not targets:
            targets.extend(reversed(_odd_instants(300, lead_ms=150)))
        return targets.pop() - time.time()

    @jobs.task(queue="punctual-retry", retries=1, backoff=backoff)
    async def flaky(ctx: Context) -> None:
        if ctx.attempt == 1:
            raise RuntimeError("the first attempt fails")

    scheduled: dict[str, float] = {}  # job id -> the run_at its retry was scheduled for
    real_finish = jobs.backend.finish

    async def watched_finish(outcomes: Sequence[Outcome]) -> None:
        scheduled.update((o.id, o.run_at) for o in outcomes if o.status is Status.QUEUED)
        await real_finish(outcomes)

    jobs.backend.finish = watched_finish  # type: ignore[method-assign]
    queued = await jobs.enqueue_many([flaky.prepare() for _ in range(300)])
    await run_until(jobs, events, "succeeded", len(queued))
    infos = [await jobs.get(job.id) for job in queued]
    assert all(i is not None and (i.status, i.attempts) == (Status.SUCCEEDED, 2) for i in infos)
    early = [(i.id, scheduled[i.id] - i.started_at) for i in infos if i and i.started_at < scheduled[i.id]]
    assert early == []  # (id, how early) of each retry that started before its time
    assert [i.run_at for i in infos if i] == [scheduled[j.id] for j in queued]  # kept exactly


async def test_stop_as_the_worker_goes_idle_returns_at_once(jobs: JobQueue) -> None:
    """A stop that lands as the worker enters its idle wait (idle_wait 30 s) ends the run at once."""

    @jobs.task(queue="idle")
    async def echo(ctx: Context, value: int) -> int:
        return value

    worker = jobs.worker(idle_wait=30.0)
    stopped_at: list[float] = []
    real_wait = jobs.backend.wait

    async def stop_on_wait(queues: list[str], timeout: float) -> None:
        if not stopped_at:  # the first wait: a SIGTERM arriving as the worker found nothing to do
            stopped_at.append(time.monotonic())
            worker.stop()
        await real_wait(queues, timeout)

    jobs.backend.wait = stop_on_wait  # type: ignore[method-assign]
    async with asyncio.timeout(40):
        await worker.run()
    assert stopped_at, "the worker never went idle"
    assert time.monotonic() - stopped_at[0] < 2.0  # not the 30 s of its idle wait
    jobs.backend.wait = real_wait  # type: ignore[method-assign]
    # the wait it left behind holds no connection with a reply pending: the queue carries on
    job = await echo.enqueue(7)
    await run_burst(jobs)
    info = await jobs.get(job.id)
    assert info is not None
    assert (info.status, info.result) == (Status.SUCCEEDED, 7)


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("redis-cluster", marks=pytest.mark.redis_cluster),
    ],
)
async def test_redis_idle_wait_above_the_read_timeout_is_no_outage(
    kind: str, request: pytest.FixtureRequest
) -> None:
    """An idle_wait longer than redis-py's read timeout (socket_timeout) is not reported as an outage."""
    if kind == "redis":
        reason = await _redis_reachable()
        if reason:
            pytest.skip(reason)
        base = REDIS_URL
    else:
        base = request.getfixturevalue("redis_cluster_url")
    jobs = JobQueue(f"{base}?prefix={unique('pktest-')}&socket_timeout=1")
    events = EventLog(jobs)

    @jobs.task(queue="slowpoll")
    async def later(ctx: Context) -> str:
        return "done"

    try:
        job = await later.enqueue(delay=1.5)  # due after more than one read timeout of idle waiting
        worker = jobs.worker(idle_wait=3.0)
        run = asyncio.create_task(worker.run())
        try:
            await events.wait("succeeded", job.id, within=10)
        finally:
            worker.stop()
            stats = await run
        assert stats.errors == 0
    finally:
        await drop_backend_data(jobs)
        await jobs.close()
