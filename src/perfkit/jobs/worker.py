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
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from perfkit.errors import ConfigurationError, PerfkitError
from perfkit.jobs.lease import LeaseKeeper
from perfkit.jobs.models import Outcome
from perfkit.jobs.runner import Runner, Running
from perfkit.jobs.scheduler import run_periodic

if TYPE_CHECKING:
    from perfkit.jobs.queue import JobQueue

logger = logging.getLogger("perfkit.jobs")
_RETRY_PAUSE = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0)


@dataclass
class WorkerStats:
    claimed: int = 0
    finished: int = 0
    handed_back: int = 0
    errors: int = 0


class Worker:
    def __init__(
        self,
        jobs: JobQueue,
        queues: Sequence[str] | None = None,
        *,
        concurrency: int = 32,
        burst: bool = False,
        grace: float = 30.0,
        heartbeat: float | None = None,
        idle_wait: float = 1.0,
        threads: int | None = None,
        cleanup_every: float = 300.0,
    ) -> None:
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ConfigurationError("concurrency", f"{concurrency!r} is not a count >= 1")
        self.jobs = jobs
        names = list(queues) if queues else sorted({t.options.queue for t in jobs.tasks.values()})
        if not names:
            raise ConfigurationError("queues", "no queues given and no task registered")
        self.queues = names
        self.concurrency = concurrency
        self._low_water = max(1, concurrency // 4)
        self.burst = burst
        self.grace = grace
        self.idle_wait = idle_wait
        self.cleanup_every = cleanup_every
        self.stats = WorkerStats()
        self.running: dict[str, Running] = {}
        self._threads = ThreadPoolExecutor(threads or min(32, concurrency), thread_name_prefix="perfkit-job")
        self._runner = Runner(jobs, self._threads)
        self._acks: list[Outcome] = []
        self._unacked = 0  # outcomes produced and not yet recorded (buffered or being written)
        self._ack_ready = asyncio.Event()
        self._slot_free = asyncio.Event()
        self._stop = asyncio.Event()
        self._hurry = False
        self._fail_streak = 0
        beat = heartbeat if heartbeat is not None else min(1.0, jobs.lease / 3)
        self.lease = LeaseKeeper(jobs, names, self.running, jobs.lease, beat, self._backend_error)
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
        periodic = [p for p in self.jobs.periodic_tasks if p.task.options.queue in self.queues]
        if periodic and not self.burst:
            background.append(asyncio.create_task(run_periodic(self.jobs, periodic), name="perfkit-cron"))
        try:
            with contextlib.suppress(PerfkitError, OSError):
                await self.lease.sweep_once()
            await self._fetch_loop()
            await self._drain()
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await self._flush_all()
            self._threads.shutdown(wait=False, cancel_futures=True)
        return self.stats

    async def _fetch_loop(self) -> None:
        backend = self.jobs.backend
        while not self._stop.is_set():
            free = self.concurrency - len(self.running)
            if free < self._low_water and self.running:  # claim in batches, not one slot at a time
                self._slot_free.clear()
                await self._slot_free.wait()
                continue
            # burst mode must not leave while an outcome (maybe a retry) is unrecorded or was recorded
            # after this claim started: snapshot both before claiming
            unacked_before, recorded_before = self._unacked, self.stats.finished
            try:
                records = await backend.claim(self.queues, free, self.jobs.lease, time.time())
                self._fail_streak = 0
            except (PerfkitError, OSError) as exc:
                await self._pause_after_error(exc)
                continue
            except Exception as exc:  # a driver error perfkit does not translate yet: keep working
                logger.exception("worker %s: unexpected error while claiming", self.id)
                await self._pause_after_error(exc)
                continue
            if self._stop.is_set() and records:  # stopped while claiming: hand them straight back
                await backend.release([(r.id, r.token) for r in records], time.time())
                self.stats.handed_back += len(records)
                return
            for record in records:
                job = Running(record)
                self.running[record.id] = job
                job.task = asyncio.create_task(self._execute(job))
            self.stats.claimed += len(records)
            if records:
                continue
            if self.burst and not self.running:
                if not unacked_before and not self._unacked and recorded_before == self.stats.finished:
                    return
                await self._flush()  # a retry may be among them: look again once it is recorded
                continue
            self._slot_free.clear()
            waiters = [
                asyncio.create_task(backend.wait(self.queues, self.idle_wait)),
                asyncio.create_task(self._stop.wait()),
                asyncio.create_task(self._slot_free.wait()),
            ]
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()
            try:
                await waiters[0]
            except asyncio.CancelledError:
                pass
            except Exception as exc:  # the wake-up channel is down: pause, then claim again
                await self._pause_after_error(exc)

    async def _execute(self, job: Running) -> None:
        try:
            outcome = await self._runner.run(job)
        except asyncio.CancelledError:
            outcome = None
        except Exception:  # a bug in perfkit itself: keep the worker alive, the lease will lapse
            logger.exception("worker %s: internal error running %s", self.id, job.record.id)
            outcome = None
        finally:
            self.running.pop(job.record.id, None)
            self._slot_free.set()
        if outcome is not None:
            self._acks.append(outcome)
            self._unacked += 1
            self._ack_ready.set()

    async def _ack_loop(self) -> None:
        while True:
            await self._ack_ready.wait()
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
            with contextlib.suppress(PerfkitError, OSError):
                await self.jobs.cleanup()
            await asyncio.sleep(self.cleanup_every)
