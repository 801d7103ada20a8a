"""`SyncJobQueue`: the producer side of a `JobQueue` for synchronous code (Django views, scripts, cron).

A thin facade: each method submits the async implementation to a background loop (`perfkit._portal`)
and waits. It owns its own backend connection, since connections belong to the loop that opened them.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from perfkit._portal import Portal
from perfkit.jobs.models import JobInfo, Priority, Status

if TYPE_CHECKING:
    from perfkit.jobs.queue import JobQueue
    from perfkit.jobs.task import Task


class SyncJobQueue:
    def __init__(self, jobs: JobQueue) -> None:
        self._jobs = jobs.sibling()
        self._portal = Portal("perfkit-jobs-sync")

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
        return self._portal.call(coro)

    def get(self, job_id: str) -> JobInfo | None:
        return self._portal.call(self._jobs.get(job_id))

    def cancel(self, job_id: str) -> JobInfo | None:
        return self._portal.call(self._jobs.cancel(job_id))

    def retry(self, job_id: str) -> JobInfo | None:
        return self._portal.call(self._jobs.retry(job_id))

    def list(
        self,
        status: Status | str | None = None,
        queue: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[JobInfo], str | None]:
        return self._portal.call(self._jobs.list(status, queue, limit, cursor))

    def depth(self) -> dict[tuple[str, int], int]:
        return self._portal.call(self._jobs.depth())

    def close(self) -> None:
        """Close the connection and stop the background loop; safe to call twice."""
        if self._portal._loop is not None:
            self._portal.call(self._jobs.close())
        self._portal.close()

    def __enter__(self) -> SyncJobQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
