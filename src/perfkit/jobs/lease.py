"""Lease upkeep: renew the leases of running jobs, and sweep jobs whose worker stopped renewing.

The BullMQ model: a job is held by a lease (expiry + token) that the worker extends every
`heartbeat` seconds while the job runs. A renewal also tells the worker which of its jobs to stop:
cancellation was requested, or the lease lapsed and the job went to someone else. Every worker also
sweeps lapsed leases, so a job whose worker was killed is queued again after at most `lease` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from perfkit.cancellation import cancelling

if TYPE_CHECKING:
    from perfkit.jobs.backends.base import JobBackend
    from perfkit.jobs.hooks import Hooks
    from perfkit.jobs.runner import Running

logger = logging.getLogger("perfkit.jobs")


class LeaseJobs(Protocol):
    """What the lease keeper needs of a queue (a `JobQueue` is one): the backend, read at each use (a
    queue makes it on first use and again after `close()`), and the event emitter."""

    @property
    def backend(self) -> JobBackend: ...

    @property
    def hooks(self) -> Hooks: ...


class LeaseKeeper:
    def __init__(
        self,
        jobs: LeaseJobs,
        queues: Sequence[str],
        running: dict[str, Running],
        lease: float,
        heartbeat: float,
        on_error: Callable[[BaseException], None],
    ) -> None:
        self.jobs = jobs
        self.queues = list(queues)
        self.running = running
        self.lease = lease
        self.heartbeat = heartbeat
        self.sweep_every = max(heartbeat, lease / 2)
        self._on_error = on_error

    async def renew_once(self) -> None:
        leases = [
            (job_id, job.record.token) for job_id, job in self.running.items() if job.stop_reason is None
        ]
        if not leases:
            return
        stop = await self.jobs.backend.renew(leases, self.lease, time.time())
        sent = dict(leases)
        for job_id in stop:
            job = self.running.get(job_id)
            if job is None:
                continue
            current = await self.jobs.backend.get(job_id)
            if job.record.token != sent.get(job_id):  # claimed again meanwhile: a newer lease, held here
                continue
            lost = current is None or current.token != job.record.token or current.status != "running"
            job.stop("lost" if lost else "cancelled")

    async def sweep_once(self) -> int:
        dead = await self.jobs.backend.reap(self.queues, time.time())
        for r in dead:
            self.jobs.hooks.emit("dead", r, error=r.error)
        return len(dead)

    async def run(self) -> None:
        last_sweep = 0.0
        while True:
            try:
                await self.renew_once()
                if time.monotonic() - last_sweep >= self.sweep_every:
                    last_sweep = time.monotonic()
                    await self.sweep_once()
            except Exception as exc:  # PerfkitError, OSError, or a driver error not translated yet
                if cancelling():  # a cancel reported as an I/O error (see perfkit.cancellation)
                    raise asyncio.CancelledError from exc
                self._on_error(exc)
            if cancelling():  # a driver swallowed our cancel and returned normally: honour it here
                raise asyncio.CancelledError
            await asyncio.sleep(self.heartbeat)
