"""`SyncJobQueue`: the producer side of a `JobQueue` for synchronous code (Django views, scripts, cron).

A thin facade: each method submits the async implementation to a background loop and waits
(`perfkit.syncfacade.SyncFacade`, the pattern `Cache.sync` follows too). It drives `jobs.sibling()`:
the same config, tasks and hooks with its own backend connection, since connections belong to the
loop that opened them. `jobs.sync()` returns one cached facade per queue: one background loop.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from perfkit.jobs.models import JobInfo, Priority, Status
from perfkit.syncfacade import SyncFacade

if TYPE_CHECKING:
    from perfkit.jobs.queue import JobQueue
    from perfkit.jobs.task import Task


class SyncJobQueue(SyncFacade):
    """Blocking producer API over `jobs`; get the queue's one facade with `jobs.sync()`."""

    def __init__(self, jobs: JobQueue) -> None:
        super().__init__("perfkit-jobs-sync")
        self._jobs = jobs.sibling()

    def enqueue(
        self,
        task: Task | str,
        *args: Any,
        delay: float | str | None = None,
        at: datetime | float | None = None,
        priority: Priority | str | int | None = None,
        key: str | None = None,
        **kwargs: Any,
    ) -> JobInfo:
        """`task.enqueue(...)` without await."""
        coro = self._jobs.enqueue(
            task, args=args, kwargs=kwargs, delay=delay, at=at, priority=priority, key=key
        )
        return self.call(coro)

    def get(self, job_id: str) -> JobInfo | None:
        return self.call(self._jobs.get(job_id))

    def cancel(self, job_id: str) -> JobInfo | None:
        return self.call(self._jobs.cancel(job_id))

    def retry(self, job_id: str) -> JobInfo | None:
        return self.call(self._jobs.retry(job_id))

    def list(
        self,
        status: Status | str | None = None,
        queue: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[JobInfo], str | None]:
        return self.call(self._jobs.list(status, queue, limit, cursor))

    def depth(self) -> dict[tuple[str, int], int]:
        return self.call(self._jobs.depth())

    async def aclose(self) -> None:
        await self._jobs.close()
