"""`Task`: a function registered on a `JobQueue`, with its queue, priority, retries and timeout."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from perfkit.jobs.models import Priority
from perfkit.jobs.retry import RetryPolicy

if TYPE_CHECKING:
    from perfkit.jobs.models import JobInfo
    from perfkit.jobs.queue import JobQueue


@dataclass(frozen=True, slots=True)
class TaskOptions:
    queue: str
    priority: Priority
    retries: int
    backoff: RetryPolicy
    timeout: float | None


class Task:
    """What `@jobs.task(...)` returns; call it to run the function directly, `enqueue()` to queue it."""

    def __init__(self, jobs: JobQueue, func: Callable[..., Any], name: str, options: TaskOptions) -> None:
        self.jobs = jobs
        self.func = func
        self.name = name
        self.options = options
        self.is_async = inspect.iscoroutinefunction(func)
        self.__doc__ = func.__doc__
        self.__wrapped__ = func

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<Task {self.name} queue={self.options.queue!r}>"

    async def enqueue(
        self,
        *args: Any,
        delay: float | str | None = None,
        at: datetime | float | None = None,
        priority: Priority | str | int | None = None,
        key: str | None = None,
        **kwargs: Any,
    ) -> JobInfo:
        """Queue one run; `delay=`/`at=` schedule it, `key=` returns the job already holding that key.

        `delay`, `at`, `priority` and `key` are options, not task arguments; a task that takes
        arguments of those names is queued with `JobQueue.enqueue(task, args=..., kwargs=...)`.
        """
        return await self.jobs.enqueue(
            self, args=args, kwargs=kwargs, delay=delay, at=at, priority=priority, key=key
        )
