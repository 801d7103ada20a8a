"""`Task`: a function registered on a `JobQueue`, with its queue, priority, retries and timeout.

A task only needs its queue's producer side (`Producer`: enqueue one job, or many); it never sees
the worker, the registry or the backend.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from perfkit.config import parse_duration
from perfkit.errors import ConfigurationError
from perfkit.jobs.config import check_queue
from perfkit.jobs.models import Priority
from perfkit.jobs.retry import BackoffSpec, RetryPolicy, make_policy

if TYPE_CHECKING:
    from perfkit.jobs.models import JobInfo


@dataclass(frozen=True, slots=True)
class TaskOptions:
    queue: str
    priority: Priority
    retries: int
    backoff: RetryPolicy
    timeout: float | None
    cpu: bool = False  # run in perfkit.cpu's process pool (perfkit.cpu.default_pool), without ctx

    @classmethod
    def check(
        cls,
        queue: str,
        *,
        priority: Priority | str | int = Priority.MEDIUM,
        retries: int = 0,
        backoff: BackoffSpec = "exponential",
        timeout: float | str | None = None,
        cpu: bool = False,
    ) -> TaskOptions:
        """The options `@jobs.task(...)` registers with, checked: a bad one raises naming it."""
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ConfigurationError("retries", f"{retries!r} is not a count >= 0")
        return cls(
            queue=check_queue(queue),
            priority=Priority.parse(priority),
            retries=retries,
            backoff=make_policy(backoff),
            timeout=None if timeout is None else parse_duration("timeout", timeout) or None,
            cpu=bool(cpu),
        )


@dataclass(frozen=True, slots=True)
class PreparedJob:
    """One job to queue with `JobQueue.enqueue_many`: what `task.prepare(*args, **options)` returns."""

    task: Task
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    delay: float | str | None = None
    at: datetime | float | None = None
    priority: Priority | str | int | None = None
    key: str | None = None


class Producer(Protocol):
    """The producer side of a queue (a `JobQueue` is one): what tasks, the scheduler and contexts use."""

    async def enqueue(
        self,
        task: Task | str,
        *,
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        delay: float | str | None = None,
        at: datetime | float | None = None,
        priority: Priority | str | int | None = None,
        key: str | None = None,
        queue: str | None = None,
    ) -> JobInfo: ...

    async def enqueue_many(self, jobs: Iterable[PreparedJob]) -> list[JobInfo]: ...


class Task:
    """What `@jobs.task(...)` returns; call it to run the function directly, `enqueue()` to queue it."""

    def __init__(self, jobs: Producer, func: Callable[..., Any], name: str, options: TaskOptions) -> None:
        self.jobs = jobs
        self.func = func
        self.name = name
        self.options = options
        self.is_async = inspect.iscoroutinefunction(func)
        if options.cpu:
            from perfkit.cpu.refs import check_function

            check_function(func, f"cpu task {name}")  # plain, module-level: a worker imports it by name
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

    def prepare(
        self,
        *args: Any,
        delay: float | str | None = None,
        at: datetime | float | None = None,
        priority: Priority | str | int | None = None,
        key: str | None = None,
        **kwargs: Any,
    ) -> PreparedJob:
        """A job not queued yet, for `jobs.enqueue_many([...])`: the arguments and options of `enqueue`."""
        return PreparedJob(self, args, kwargs, delay, at, priority, key)

    async def map(
        self,
        args_list: Iterable[Any],
        *,
        delay: float | str | None = None,
        at: datetime | float | None = None,
        priority: Priority | str | int | None = None,
    ) -> list[JobInfo]:
        """Queue one job per item in one round trip; an item is a tuple of arguments, or one argument.

        `await resize.map([("a.png", 64), ("b.png", 64)])`, `await send_email.map(addresses)`.
        """
        jobs = [
            PreparedJob(self, item if isinstance(item, tuple) else (item,), {}, delay, at, priority)
            for item in args_list
        ]
        return await self.jobs.enqueue_many(jobs)
