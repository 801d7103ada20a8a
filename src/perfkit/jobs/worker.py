"""The worker run loop: claim batches of jobs, run them concurrently, acknowledge in batches.

Three loops share one event loop: the fetch loop (claims as many jobs as there are free slots, in one
round trip, and otherwise blocks on the backend's wake-up), the ack loop (records every outcome that
piled up while the previous write was in flight, in one round trip), and the lease keeper
(`lease.py`). A graceful stop stops claiming, lets running jobs finish within `grace` seconds, and
hands the rest back to the queue untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from perfkit.cancellation import cancelling
from perfkit.config import parse_duration
from perfkit.errors import ConfigurationError, PerfkitError
from perfkit.jobs.context import ContextJobs
from perfkit.jobs.lease import LeaseKeeper
from perfkit.jobs.models import Outcome, Status
from perfkit.jobs.runner import Runner, Running
from perfkit.jobs.scheduler import PeriodicJobs, run_periodic

if TYPE_CHECKING:
    from perfkit.jobs.config import JobsConfig
    from perfkit.jobs.models import JobRecord
    from perfkit.jobs.registry import TaskRegistry
    from perfkit.serialization import Serializer

logger = logging.getLogger("perfkit.jobs")
_RETRY_PAUSE = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0)
# automatic prefetch: hold about this much work (s) waiting per slot, between 1x and 32x concurrency
PREFETCH_HOLD = 0.005
PREFETCH_MAX = 32
# while the fetch loop waits for free slots, outcomes wait up to this long (s) to ride on its next claim
ACK_DELAY = 0.01


class WorkerJobs(ContextJobs, PeriodicJobs, Protocol):
    """What a worker takes from its queue (a `JobQueue` is one): the backend (read at each use: a queue
    makes it on first use and again after `close()`), the task registry, the event emitter, the
    serializer and the settings; enqueue only for periodic ticks and `ctx.jobs`."""

    @property
    def registry(self) -> TaskRegistry: ...

    @property
    def serializer(self) -> Serializer: ...

    @property
    def config(self) -> JobsConfig: ...


@dataclass
class WorkerStats:
    claimed: int = 0
    finished: int = 0
    handed_back: int = 0
    errors: int = 0


class Worker:
    def __init__(
        self,
        jobs: WorkerJobs,
        queues: Sequence[str] | None = None,
        *,
        concurrency: int = 32,
        prefetch: int | None = None,
        burst: bool = False,
        grace: float = 30.0,
        heartbeat: float | None = None,
        idle_wait: float = 1.0,
        threads: int | None = None,
        cleanup_every: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ConfigurationError("concurrency", f"{concurrency!r} is not a count >= 1")
        self.jobs = jobs
        self.registry = jobs.registry
        self.hooks = jobs.hooks
        served = self.registry.queues()
        names = list(queues) if queues else sorted(served)
        if not names:
            raise ConfigurationError("queues", "no queues given and no task registered")
        self.queues = names
        for name in names:
            if name not in served:  # a typo in --queues would otherwise wait forever, silently
                logger.warning(
                    "worker: no registered task uses queue %r (tasks' queues: %s); its jobs will be "
                    "dead-lettered as unknown tasks",
                    name,
                    sorted(served) or "none",
                )
        self.concurrency = concurrency
        self.prefetch = concurrency if prefetch is None else prefetch
        if isinstance(self.prefetch, bool) or not isinstance(self.prefetch, int) or self.prefetch < 0:
            raise ConfigurationError("prefetch", f"{prefetch!r} is not a count >= 0")
        self._auto_prefetch = prefetch is None
        self._avg_run = PREFETCH_HOLD  # moving average of job run time (s); short jobs get more prefetch
        self._capacity = concurrency + self.prefetch  # leased jobs held at once: running + waiting
        self._low_water = max(1, self._capacity // 4)
        self._waiting: deque[Running] = deque()
        self._executing = 0
        self.burst = burst
        self.grace = parse_duration("grace", grace)
        self.idle_wait = parse_duration("idle_wait", idle_wait)
        self.cleanup_every = parse_duration("cleanup_every", cleanup_every)
        self.clock = clock  # the wall clock periodic tasks are scheduled by (tests shift it)
        self.stats = WorkerStats()
        self.running: dict[str, Running] = {}
        self._threads = ThreadPoolExecutor(threads or min(32, concurrency), thread_name_prefix="perfkit-job")
        self._runner = Runner(self.registry, jobs.serializer, self.hooks, jobs, self._threads)
        self._acks: list[Outcome] = []
        self._unacked = 0  # outcomes produced and not yet recorded (buffered or being written)
        self._ack_ready = asyncio.Event()
        self._acks_taken = asyncio.Event()
        self._claim_soon = False  # the fetch loop waits for slots, then claims (taking the acks along)
        self._slot_free = asyncio.Event()
        self._wake: asyncio.Task[None] | None = None  # the pending wake-up wait, if any
        self._stop = asyncio.Event()
        self._hurry = False
        self._fail_streak = 0
        lease = jobs.config.lease
        self._retention = jobs.config.retention
        beat = parse_duration("heartbeat", heartbeat) if heartbeat is not None else min(1.0, lease / 3)
        self.lease = LeaseKeeper(jobs, names, self.running, lease, beat, self._backend_error)
        self.id = f"{os.uname().nodename}:{os.getpid()}"

    def stop(self, *, hurry: bool = False) -> None:
        """Stop taking jobs; running ones get `grace` seconds (none with `hurry`), the rest go back."""
        self._hurry = self._hurry or hurry or self._stop.is_set()
        self._stop.set()
        self._slot_free.set()

    def _backend_error(self, exc: BaseException) -> None:
        self.stats.errors += 1
        logger.warning("worker %s: backend error, retrying: %s", self.id, exc)

    async def _pause_after_error(self, exc: BaseException) -> None:
        self._backend_error(exc)
        pause = _RETRY_PAUSE[min(self._fail_streak, len(_RETRY_PAUSE) - 1)]
        self._fail_streak += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), pause)

    # -- the loops -----------------------------------------------------------------------------------
    async def run(self) -> WorkerStats:
        """Work until `stop()` (or, with `burst`, until the queues are empty); returns counters."""
        background = [
            asyncio.create_task(self._ack_loop(), name="perfkit-acks"),
            asyncio.create_task(self.lease.run(), name="perfkit-leases"),
            asyncio.create_task(self._cleanup_loop(), name="perfkit-cleanup"),
        ]
        periodic = [p for p in self.registry.periodic if p.task.options.queue in self.queues]
        if periodic and not self.burst:
            background.append(
                asyncio.create_task(run_periodic(self.jobs, periodic, self.clock), name="perfkit-cron")
            )
        try:
            with contextlib.suppress(PerfkitError, OSError):
                await self.lease.sweep_once()
            await self._fetch_loop()
            await self._drain()
        finally:
            if self._wake is not None:
                background.append(self._wake)
                self._wake = None
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await self._flush_all()
            self._threads.shutdown(wait=False, cancel_futures=True)
        return self.stats

    # C901: prefetch sizing, fetch, lease and shutdown in one loop (issue 15: the run loop is being split)
    async def _fetch_loop(self) -> None:  # noqa: C901
        backend = self.jobs.backend
        while not self._stop.is_set():
            if self._auto_prefetch:
                self._resize()
            free = self._capacity - len(self.running)
            if free < self._low_water and self.running:  # claim in batches, not one slot at a time
                self._slot_free.clear()
                self._claim_soon = True
                try:
                    await self._slot_free.wait()
                finally:
                    self._claim_soon = False
                continue
            # burst mode must not leave while an outcome (maybe a retry) is unrecorded or was recorded
            # after this claim started: snapshot both before claiming
            unacked_before, recorded_before = self._unacked, self.stats.finished
            acks, self._acks = self._acks, []  # outcomes not sent yet ride on this claim
            if acks:
                self._acks_taken.set()
            self._claim_soon = True  # outcomes arriving meanwhile can ride on the next one
            try:
                records = await backend.claim(self.queues, free, self.lease.lease, time.time(), acks)
                self._fail_streak = 0
            except BaseException as exc:
                self._claim_soon = False
                if acks:  # back to the ack loop; recording an outcome twice is harmless (stale token)
                    self._acks[:0] = acks
                    self._ack_ready.set()
                if isinstance(exc, PerfkitError | OSError):
                    if cancelling():
                        raise asyncio.CancelledError from exc
                elif isinstance(exc, Exception):  # a driver error perfkit does not translate yet
                    logger.exception("worker %s: unexpected error while claiming", self.id)
                else:
                    raise
                await self._pause_after_error(exc)
                continue
            self._claim_soon = False
            if acks:
                self.stats.finished += len(acks)
                self._unacked -= len(acks)
            if self._stop.is_set() and records:  # stopped while claiming: hand them straight back
                with contextlib.suppress(Exception):  # if this fails too, their leases lapse instead
                    await backend.release([(r.id, r.token) for r in records], time.time())
                    self.stats.handed_back += len(records)
                return
            for record in records:
                self._hold(record)
            self._start_waiting()
            self.stats.claimed += len(records)
            if records:
                continue
            if self.burst and not self.running:
                if not unacked_before and not self._unacked and recorded_before == self.stats.finished:
                    return
                await self._flush()  # a retry may be among them: look again once it is recorded
                continue
            if self._stop.is_set():  # stopped while claiming: no wait to start, and none to end
                return
            self._slot_free.clear()
            # a wake-up wait woken early by a free slot stays pending and is reused (a token it
            # popped is not lost); on a stop, run() cancels it, and a backend's wait ends at once
            # when cancelled (the Redis one awaits its BLPOP in a task of its own: see its wait())
            if self._wake is None:
                self._wake = asyncio.create_task(backend.wait(self.queues, self.idle_wait))
            others = [asyncio.create_task(self._stop.wait()), asyncio.create_task(self._slot_free.wait())]
            await asyncio.wait([self._wake, *others], return_when=asyncio.FIRST_COMPLETED)
            for waiter in others:
                waiter.cancel()
            if self._wake.done():
                wake, self._wake = self._wake, None
                error = None if wake.cancelled() else wake.exception()
                if error is not None:  # the wake-up channel is down: pause, then claim again
                    await self._pause_after_error(error)

    def _resize(self) -> None:
        """Automatic prefetch: jobs that finish in well under a round trip are claimed in larger batches.

        About `PREFETCH_HOLD` seconds of work wait per slot, between concurrency and `PREFETCH_MAX` x
        concurrency jobs: jobs of 5 ms or more get the default (prefetch = concurrency), so no worker
        hoards work another could start; a backlog of tiny jobs is not bound by claim round trips.
        """
        c = self.concurrency
        self.prefetch = max(c, min(c * PREFETCH_MAX, int(c * PREFETCH_HOLD / max(self._avg_run, 1e-6))))
        self._capacity = c + self.prefetch
        self._low_water = max(1, self._capacity // 4)

    def _hold(self, record: JobRecord) -> None:
        """Hold a claimed job. One this worker still runs (its lease lapsed and it was claimed again) keeps
        its one task: that task carries on under the new lease or, when already stopping, is let finish
        before the new attempt starts. Never two tasks of one job here, nor an outcome recorded twice."""
        held = self.running.get(record.id)
        if held is not None and held.adopt(record):
            logger.warning(
                "worker %s: job %s was claimed again while it runs here (its lease lapsed: was the event "
                "loop blocked for over the %ss lease?); it carries on as attempt %d",
                self.id, record.id, self.lease.lease, record.attempts,
            )  # fmt: skip
            return
        job = self.running[record.id] = Running(record)
        if held is not None and held.task is not None:
            held.task.add_done_callback(lambda _: self._wait_in_line(job))
        else:
            self._waiting.append(job)

    def _wait_in_line(self, job: Running) -> None:
        """The stale attempt of `job`'s job has ended: `job` starts next."""
        self._waiting.appendleft(job)
        self._start_waiting()

    def _let_go(self, job: Running) -> None:
        """Forget `job`, unless the entry is already a newer attempt of the same job."""
        if self.running.get(job.record.id) is job:
            del self.running[job.record.id]
        self._slot_free.set()

    def _start_waiting(self) -> None:
        """Start prefetched jobs while there are free slots (never once stopping: they go back)."""
        while self._waiting and self._executing < self.concurrency and not self._stop.is_set():
            job = self._waiting.popleft()
            if job.stop_reason is not None:  # cancelled, or its lease lost, while it waited here
                self._let_go(job)
                if job.stop_reason == "cancelled":
                    r = job.record
                    self.hooks.emit("cancelled", r)
                    self._record(
                        Outcome(r.id, r.token, Status.CANCELLED, error="cancelled", completed_at=time.time())
                    )
                continue
            self._executing += 1
            job.task = asyncio.create_task(self._execute(job))

    def _record(self, outcome: Outcome) -> None:
        self._acks.append(outcome)
        self._unacked += 1
        self._ack_ready.set()

    async def _execute(self, job: Running) -> None:
        started = time.monotonic()
        try:
            outcome = await self._runner.run(job)
            self._avg_run += (time.monotonic() - started - self._avg_run) * 0.05
        except asyncio.CancelledError:
            outcome = None
        except Exception:  # a bug in perfkit itself: keep the worker alive, the lease will lapse
            logger.exception("worker %s: internal error running %s", self.id, job.record.id)
            outcome = None
        finally:
            self._executing -= 1
            self._let_go(job)
        if outcome is not None:
            self._record(outcome)
        self._start_waiting()

    async def _ack_loop(self) -> None:
        while True:
            await self._ack_ready.wait()
            await asyncio.sleep(0)  # the fetch loop, woken by the same outcomes, may take them along
            if self._acks and self._claim_soon and not self._stop.is_set():
                self._acks_taken.clear()  # a claim is due as soon as slots free up: ride on it if soon
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._acks_taken.wait(), ACK_DELAY)
            self._ack_ready.clear()
            await self._flush()

    async def _flush(self) -> None:
        while self._acks:
            batch, self._acks = self._acks, []
            try:
                await self.jobs.backend.finish(batch)
            except asyncio.CancelledError:
                self._acks[:0] = batch  # finishing twice is harmless: the second write matches nothing
                raise
            except Exception as exc:  # PerfkitError, OSError, or a driver error not translated yet
                self._acks[:0] = batch
                await self._pause_after_error(exc)
                if self._stop.is_set() and self._fail_streak > len(_RETRY_PAUSE) * 2:
                    return  # give up: the leases will lapse and the jobs will run again
                continue
            self.stats.finished += len(batch)
            self._unacked -= len(batch)

    async def _flush_all(self) -> None:
        with contextlib.suppress(PerfkitError, OSError):
            await self._flush()

    async def _drain(self) -> None:
        """After a stop: wait for running jobs up to the grace period, then hand the rest back."""
        pending = [j.task for j in self.running.values() if j.task is not None]
        if pending and not self._hurry:
            await asyncio.wait(pending, timeout=self.grace)
        leftovers = list(self.running.values())
        for job in leftovers:
            job.stop("shutdown")
        tasks = [j.task for j in leftovers if j.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        if leftovers:
            with contextlib.suppress(PerfkitError, OSError):
                await self.jobs.backend.release(
                    [(j.record.id, j.record.token) for j in leftovers], time.time()
                )
                self.stats.handed_back += len(leftovers)

    async def _cleanup_loop(self) -> None:
        while True:
            try:
                await self.jobs.backend.cleanup(time.time() - self._retention)
            except (PerfkitError, OSError) as exc:
                if cancelling():  # a cancel reported as an I/O error (see perfkit.cancellation)
                    raise asyncio.CancelledError from exc
            if cancelling():  # a driver swallowed our cancel and returned normally: honour it here
                raise asyncio.CancelledError
            await asyncio.sleep(self.cleanup_every)
