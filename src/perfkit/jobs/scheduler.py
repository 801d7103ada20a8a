"""Periodic tasks: at each cron tick one worker (whichever claims the tick first) enqueues the task."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from perfkit.errors import PerfkitError
from perfkit.jobs.task import Producer

if TYPE_CHECKING:
    from perfkit.jobs.backends.base import JobBackend
    from perfkit.jobs.registry import Periodic

logger = logging.getLogger("perfkit.jobs")


class PeriodicJobs(Producer, Protocol):
    """What the scheduler needs of a queue (a `JobQueue` is one): enqueue, the backend that claims each
    tick once across workers, and the retention (how long a claim is remembered)."""

    @property
    def backend(self) -> JobBackend: ...

    @property
    def retention(self) -> float: ...


async def tick(jobs: PeriodicJobs, periodic: Periodic, when: float) -> bool:
    """Enqueue `periodic` for the tick at `when` unless another worker already did; True if we did."""
    name = f"periodic:{periodic.task.name}:{int(when)}"
    if not await jobs.backend.claim_once(name, ttl=max(3600.0, jobs.retention)):
        return False
    await jobs.enqueue(periodic.task)
    return True


async def run_periodic(
    jobs: PeriodicJobs, entries: list[Periodic], clock: Callable[[], float] = time.time
) -> None:
    """Sleep to the next tick of each entry and fire it; runs until cancelled.

    `clock` is the wall clock the ticks are read from (UNIX seconds); tests shift it to reach a tick.
    """
    if not entries:
        return
    due = {i: p.cron.next_after(clock()) for i, p in enumerate(entries)}
    while True:
        index = min(due, key=due.__getitem__)
        await asyncio.sleep(max(0.0, due[index] - clock()))
        try:
            await tick(jobs, entries[index], due[index])
        except PerfkitError as exc:
            logger.warning("periodic task %s missed its tick: %s", entries[index].task.name, exc)
        due[index] = entries[index].cron.next_after(due[index])
