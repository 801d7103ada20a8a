"""Batch enqueue (`enqueue_many`, `task.map`), concurrent enqueues (autopipelined), acknowledgements riding
on claims, automatic prefetch, the worker's wake-up wait and a periodic task firing inside a running
worker, on every backend."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Sequence

import pytest

from perfkit.errors import BackendUnavailableError, ConfigurationError, SerializationError
from perfkit.jobs import Context, JobQueue, Priority, Status
from perfkit.jobs.cron import Cron
from perfkit.jobs.models import Outcome

from .conftest import EventLog


async def run_burst(jobs: JobQueue) -> None:
    await jobs.worker(burst=True, concurrency=1, prefetch=0).run()


async def test_enqueue_many_keeps_strict_priorities_and_fifo(jobs: JobQueue) -> None:
    """A batch with mixed priorities runs highest priority first, FIFO within one, like single enqueues."""
    ran: list[tuple[str, int]] = []

    @jobs.task(queue="batch")
    async def record(ctx: Context, prio: str, n: int) -> None:
        ran.append((prio, n))

    order = ["low", "high", "medium", "critical", "low", "high"]
    infos = await jobs.enqueue_many([record.prepare(p, n, priority=p) for n, p in enumerate(order)])
    assert [i.priority for i in infos] == [Priority.parse(p) for p in order]
    assert [i.args for i in infos] == [(p, n) for n, p in enumerate(order)]
    assert len({i.id for i in infos}) == len(order)
    assert await jobs.depth() == {("batch", 0): 1, ("batch", 1): 2, ("batch", 2): 1, ("batch", 3): 2}
    await run_burst(jobs)
    assert ran == [("critical", 3), ("high", 1), ("high", 5), ("medium", 2), ("low", 0), ("low", 4)]


async def test_enqueue_many_idempotency_keys_per_item(jobs: JobQueue) -> None:
    """A key already held, or repeated within the batch, returns the job holding it; other items queue."""

    @jobs.task(queue="keys")
    async def charge(ctx: Context, amount: int) -> int:
        return amount

    held = await charge.enqueue(1, key="order-1")
    infos = await jobs.enqueue_many(
        [
            charge.prepare(2, key="order-1"),
            charge.prepare(3, key="order-2"),
            charge.prepare(4, key="order-2"),
            charge.prepare(5),
        ]
    )
    assert infos[0].id == held.id
    assert infos[0].args == (1,)
    assert infos[2].id == infos[1].id
    assert infos[2].args == (3,)
    assert infos[3].key is None
    assert len({i.id for i in infos}) == 3
    assert sum((await jobs.depth()).values()) == 3


async def test_enqueue_many_bad_item_queues_nothing(jobs: JobQueue) -> None:
    """One bad item (unserializable, bad option, not prepared) raises naming its index; nothing is queued."""

    @jobs.task(queue="bad")
    async def work(ctx: Context, value: object) -> None: ...

    with pytest.raises(SerializationError, match=r"item 1 .*task .*work"):
        await jobs.enqueue_many([work.prepare(1), work.prepare(object()), work.prepare(3)])
    with pytest.raises(ConfigurationError, match=r"item 2 .*priority"):
        await jobs.enqueue_many([work.prepare(1), work.prepare(2), work.prepare(3, priority="urgent")])
    with pytest.raises(ConfigurationError, match=r"item 0 is .*not a task.prepare"):
        await jobs.enqueue_many([("not", "prepared")])  # type: ignore[list-item]
    assert await jobs.depth() == {}
    assert await jobs.enqueue_many([]) == []


async def test_task_map_queues_one_job_per_item(jobs: JobQueue, events: EventLog) -> None:
    """task.map takes tuples of arguments or single arguments, shares the options, and every job runs."""
    seen: list[tuple[object, ...]] = []

    @jobs.task(queue="map")
    async def add(ctx: Context, a: int, b: int = 0) -> int:
        seen.append((a, b))
        return a + b

    infos = await add.map([(1, 2), (3, 4), 5], priority="high")
    assert [i.args for i in infos] == [(1, 2), (3, 4), (5,)]
    assert {i.priority for i in infos} == {Priority.HIGH}
    assert events.names().count("enqueued") == 3
    later = await add.map([(6, 7)], delay=60)
    assert (await jobs.get(later[0].id)).status is Status.SCHEDULED  # type: ignore[union-attr]
    await run_burst(jobs)
    assert sorted(seen) == [(1, 2), (3, 4), (5, 0)]
    assert (await jobs.get(infos[0].id)).result == 3  # type: ignore[union-attr]


async def test_concurrent_enqueues_all_land_and_run(jobs: JobQueue) -> None:
    """Hundreds of enqueues issued at once (coalesced into batches) each get their own job, and all run."""
    done: set[int] = set()

    @jobs.task(queue="burst")
    async def work(ctx: Context, n: int) -> int:
        done.add(n)
        return n

    infos = await asyncio.gather(*(work.enqueue(n) for n in range(300)))
    assert [i.args for i in infos] == [(n,) for n in range(300)]
    assert len({i.id for i in infos}) == 300
    assert sum((await jobs.depth()).values()) == 300
    await jobs.worker(burst=True).run()
    assert done == set(range(300))
    assert (await jobs.get(infos[123].id)).result == 123  # type: ignore[union-attr]


async def test_concurrent_enqueues_with_one_key_share_one_job(jobs: JobQueue) -> None:
    """Concurrent enqueues with the same key (coalesced into one batch) all return the same job."""

    @jobs.task(queue="samekey")
    async def charge(ctx: Context, amount: int) -> None: ...

    infos = await asyncio.gather(*(charge.enqueue(n, key="order-9") for n in range(20)))
    assert len({i.id for i in infos}) == 1
    assert sum((await jobs.depth()).values()) == 1


async def test_concurrent_enqueue_errors_go_to_their_callers(jobs: JobQueue) -> None:
    """Among concurrent enqueues, only the callers with bad input get an error; the others' jobs land."""

    @jobs.task(queue="mixed")
    async def work(ctx: Context, value: object) -> None: ...

    values: list[object] = [object() if n % 7 == 3 else n for n in range(50)]
    results = await asyncio.gather(*(work.enqueue(v) for v in values), return_exceptions=True)
    for value, result in zip(values, results, strict=True):
        if isinstance(value, int):
            assert not isinstance(result, BaseException)
            assert result.args == (value,)
        else:
            assert isinstance(result, SerializationError)
    good = sum(1 for v in values if isinstance(v, int))
    assert sum((await jobs.depth()).values()) == good


@pytest.mark.parametrize("scheme", ["redis", "postgresql"])
async def test_concurrent_enqueues_to_a_down_server_each_fail(scheme: str) -> None:
    """Server down: every caller of a coalesced batch gets BackendUnavailableError; none waits forever."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once the socket is closed
    jobs = JobQueue(f"{scheme}://127.0.0.1:{port}/0")

    @jobs.task(queue="down")
    async def nothing(ctx: Context, n: int) -> None: ...

    try:
        async with asyncio.timeout(30):
            results = await asyncio.gather(*(nothing.enqueue(n) for n in range(40)), return_exceptions=True)
        assert all(isinstance(r, BackendUnavailableError) for r in results), results
    finally:
        await jobs.close()


async def test_periodic_task_fires_inside_a_running_worker(
    make_queue: Callable[..., JobQueue],
) -> None:
    """A running worker enqueues and runs a `* * * * *` task at the minute tick (its clock set near it)."""
    jobs = make_queue()
    events = EventLog(jobs)
    ticks: list[float] = []

    @jobs.periodic("* * * * *", queue="cron", name="every_minute")
    async def every_minute(ctx: Context) -> None:
        ticks.append(time.time())

    now = time.time()
    offset = Cron("* * * * *").next_after(now) - 0.3 - now  # the worker's clock: 0.3 s before a tick
    worker = jobs.worker(["cron"], clock=lambda: time.time() + offset)
    run = asyncio.create_task(worker.run())
    try:
        await events.wait("succeeded", within=10)
    finally:
        worker.stop()
        await run
    assert len(ticks) == 1
    page, _ = await jobs.list(queue="cron")
    assert [(j.type, j.status) for j in page] == [("every_minute", Status.SUCCEEDED)]


async def test_acks_riding_on_a_claim_are_recorded_and_stale_ones_ignored(jobs: JobQueue) -> None:
    """claim(finish=...) records outcomes first (success, failure, key release); stale ones change nothing."""

    @jobs.task(queue="ride")
    async def work(ctx: Context, n: int) -> None: ...

    await work.enqueue(1, key="k1")
    await work.enqueue(2)
    await work.enqueue(3)
    first = await jobs.backend.claim(["ride"], 2, 30, time.time())
    assert len(first) == 2
    ok = Outcome(first[0].id, first[0].token, Status.SUCCEEDED, result=b"\xc0", completed_at=time.time())
    bad = Outcome(first[1].id, first[1].token, Status.FAILED, error="E: no", completed_at=time.time())
    stale = Outcome(first[1].id, first[1].token - 1, Status.SUCCEEDED, result=b"\xc0")
    second = await jobs.backend.claim(["ride"], 5, 30, time.time(), [stale, ok, bad])
    assert len(second) == 1
    assert (await jobs.get(second[0].id)).args == (3,)  # type: ignore[union-attr]
    done, failed = await jobs.get(first[0].id), await jobs.get(first[1].id)
    assert done is not None and failed is not None
    assert (done.status, done.result) == (Status.SUCCEEDED, None)
    assert (failed.status, failed.error) == (Status.FAILED, "E: no")
    again = await work.enqueue(4, key="k1")  # the key was released with the success
    assert again.id != first[0].id
    nothing = await jobs.backend.claim(["ride"], 5, 30, time.time(), [ok])  # already recorded: no change
    assert [r.id for r in nothing] == [again.id]
    assert (await jobs.get(first[0].id)).status is Status.SUCCEEDED  # type: ignore[union-attr]


async def test_a_retry_riding_on_a_claim_is_not_claimed_before_its_run_at(jobs: JobQueue) -> None:
    """A retry recorded by a slow claim (due meanwhile) is never claimed with a start before its run_at."""

    @jobs.task(queue="ride-late")
    async def work(ctx: Context) -> None: ...

    await work.enqueue()
    (first,) = await jobs.backend.claim(["ride-late"], 1, 30, time.time())
    real_finish = jobs.backend.finish

    async def slow_finish(outcomes: Sequence[Outcome]) -> None:
        await asyncio.sleep(0.15)  # a loaded server: the retry is due by the time it is recorded
        await real_finish(outcomes)

    jobs.backend.finish = slow_finish  # type: ignore[method-assign]
    now = time.time()
    retry = Outcome(first.id, first.token, Status.QUEUED, error="E: again", run_at=now + 0.05)
    claimed = await jobs.backend.claim(["ride-late"], 5, 30, now, [retry])
    assert all(r.started_at is not None and r.started_at >= r.run_at for r in claimed), claimed
    info = await jobs.get(first.id)
    assert info is not None
    assert info.started_at is not None
    assert info.started_at >= info.run_at or info.status is Status.QUEUED


def test_automatic_prefetch_grows_only_for_short_jobs(jobs: JobQueue) -> None:
    """Automatic prefetch is concurrency for jobs of 5 ms or more and up to 32x it for tiny jobs."""
    worker = jobs.worker(["q"], concurrency=4)
    assert worker.prefetch == 4
    for seconds, prefetch in ((1.0, 4), (0.005, 4), (0.0025, 8), (0.0001, 128)):
        worker._avg_run = seconds
        worker._resize()
        assert worker.prefetch == prefetch
        assert worker._capacity == 4 + prefetch
    fixed = jobs.worker(["q"], concurrency=4, prefetch=0)
    assert not fixed._auto_prefetch
    assert fixed.prefetch == 0


async def test_worker_never_cancels_its_wake_up_wait(jobs: JobQueue) -> None:
    """A job finishing while the worker waits for work does not cancel that wait (redis-py can swallow
    such a cancel and stall the worker for idle_wait); the burst still ends when the job is done."""
    release = asyncio.Event()
    fetching_done = asyncio.Event()
    waits: list[str] = []
    a_wait_ended = asyncio.Event()
    real_wait = jobs.backend.wait

    async def watched_wait(queues: list[str], idle: float) -> None:
        try:
            await real_wait(queues, idle)
            waits.append("returned")
        except asyncio.CancelledError:  # the worker's teardown may cancel a pending wait; nothing else
            waits.append("cancelled at teardown" if fetching_done.is_set() else "cancelled")
            raise
        finally:
            a_wait_ended.set()

    jobs.backend.wait = watched_wait  # type: ignore[method-assign]

    @jobs.task(queue="idle")
    async def gated(ctx: Context) -> None:
        await release.wait()

    job = await gated.enqueue()
    worker = jobs.worker(["idle"], burst=True, concurrency=2, prefetch=0, idle_wait=0.2)
    fetch_loop = worker._fetch_loop

    async def watched_fetch_loop() -> None:
        try:
            await fetch_loop()
        finally:
            fetching_done.set()

    worker._fetch_loop = watched_fetch_loop  # type: ignore[method-assign]
    run = asyncio.create_task(worker.run())
    async with asyncio.timeout(15):
        ended = asyncio.create_task(a_wait_ended.wait())  # the worker runs the job and waits (0.2 s) for more
        await asyncio.wait([ended, run], return_when=asyncio.FIRST_COMPLETED)
        ended.cancel()
        release.set()
        stats = await run
    assert stats.finished == 1
    assert "cancelled" not in waits
    assert (await jobs.get(job.id)).status is Status.SUCCEEDED  # type: ignore[union-attr]
