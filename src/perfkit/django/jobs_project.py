"""`ProjectJobs`: the project's queue as `PERFKIT["jobs"]` says now, and the producer behind its tasks.

Tasks and hooks belong to the project, not to one queue: they outlive a change of the setting (tests
override it), and the queue is rebuilt around them. One queue per process; a forked child (gunicorn
`--preload`) builds its own.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any, TypeVar

from perfkit.django.jobs_portal import PortalQueue
from perfkit.errors import ConfigurationError
from perfkit.jobs import JobInfo, JobQueue, PreparedJob, Priority, Task
from perfkit.jobs.hooks import Hooks
from perfkit.jobs.registry import TaskRegistry
from perfkit.jobs.retry import BackoffSpec
from perfkit.jobs.task import TaskOptions

__all__ = ["ProjectJobs"]

T = TypeVar("T")
# the parent's queues a forked child inherited: kept referenced so that their connections are never
# finalized in the child (see ProjectJobs._after_fork)
_FORKED_AWAY: list[PortalQueue] = []
_NOT_SET = "is not set: add PERFKIT = {'jobs': 'redis://...'} (or sqlite:///..., postgresql://...)"


class ProjectJobs:
    """The project's queue, as `PERFKIT["jobs"]` says now: the producer behind every `@task`.

    Its tasks and hooks outlive a change of the setting (tests override it); the queue is rebuilt.
    """

    def __init__(self, task_class: type[Task] = Task) -> None:
        self.task_class = task_class  # what `task()` makes (perfkit.django.jobs: DjangoTask)
        self.registry = TaskRegistry()
        self.hooks = Hooks()
        self._bound: PortalQueue | None = None
        self._lock = threading.Lock()
        self._fork_safe = False

    def _after_fork(self) -> None:
        """In a forked child (gunicorn --preload): the parent's background loop thread is not there, so
        forget its queue and build a new one. The parent's is never closed, nor freed, here: closing a
        connection it inherited would unregister that socket from the event-loop selector (epoll) that
        the child shares with the parent, and the parent's loop would stop hearing its replies."""
        if self._bound is not None:
            _FORKED_AWAY.append(self._bound)
        self._bound = None
        self._lock = threading.Lock()

    def _current(self) -> PortalQueue | None:
        from perfkit.django.conf import get_settings

        config = get_settings().jobs
        bound = self._bound
        if bound is not None and bound.config == config:
            return bound
        with self._lock:
            old = self._bound
            if old is not None and old.config == config:
                return old
            self._bound = None if config is None else PortalQueue(config, self.registry, self.hooks)
            if not self._fork_safe:
                os.register_at_fork(after_in_child=self._after_fork)
                self._fork_safe = True
        if old is not None:
            old.close()
        return self._bound

    def required(self) -> PortalQueue:
        """The current queue; a ConfigurationError naming PERFKIT['jobs'] when it is not set."""
        bound = self._current()
        if bound is None:
            raise ConfigurationError("PERFKIT['jobs']", _NOT_SET)
        return bound

    def queue(self) -> JobQueue | None:
        """The project's JobQueue (one per process); None when `PERFKIT["jobs"]` is not set."""
        bound = self._current()
        return None if bound is None else bound.queue

    @property
    def default_queue(self) -> str:
        bound = self._current()
        return "default" if bound is None else bound.config.default_queue

    def task(
        self,
        func: Callable[..., Any] | None = None,
        *,
        name: str | None = None,
        queue: str | None = None,
        priority: Priority | str | int = Priority.MEDIUM,
        retries: int = 0,
        backoff: BackoffSpec = "exponential",
        timeout: float | str | None = None,
    ) -> Any:
        """Register `func(ctx, ...)` as a project task (the options of `JobQueue.task`); `@task` or
        `@task(queue=..., ...)`. Registering needs no queue; enqueueing does."""

        def register(f: Callable[..., Any]) -> Task:
            options = TaskOptions.check(
                queue or self.default_queue, priority=priority, retries=retries, backoff=backoff,
                timeout=timeout,
            )  # fmt: skip
            t = self.task_class(self, f, name or f"{f.__module__}.{f.__qualname__}", options)
            self.registry.add(t)
            return t

        return register if func is None else register(func)

    # -- the producer side (what `Task.enqueue` and `Task.map` call) ---------------------------------
    async def enqueue(
        self,
        task: Task | str,
        *,
        args: Iterable[Any] = (),
        kwargs: dict[str, Any] | None = None,
        delay: float | str | None = None,
        at: datetime | float | None = None,
        priority: Priority | str | int | None = None,
        key: str | None = None,
        queue: str | None = None,
    ) -> JobInfo:
        """`JobQueue.enqueue` on the project's queue, from any event loop."""
        bound = self.required()
        return await bound.acall(
            bound.portal_queue.enqueue(
                task,
                args=tuple(args),
                kwargs=kwargs,
                delay=delay,
                at=at,
                priority=priority,
                key=key,
                queue=queue,
            )
        )

    async def enqueue_many(self, jobs: Iterable[PreparedJob]) -> list[JobInfo]:
        """`JobQueue.enqueue_many` on the project's queue, from any event loop."""
        bound = self.required()
        return await bound.acall(bound.portal_queue.enqueue_many(list(jobs)))

    def enqueue_sync(
        self,
        task: Task | str,
        *args: Any,
        delay: float | str | None = None,
        at: datetime | float | None = None,
        priority: Priority | str | int | None = None,
        key: str | None = None,
        **kwargs: Any,
    ) -> JobInfo:
        """`task.enqueue(...)` without await, for sync code: WSGI views, signals, commands, scripts."""
        bound = self.required()
        return bound.call(
            bound.portal_queue.enqueue(
                task, args=args, kwargs=kwargs, delay=delay, at=at, priority=priority, key=key
            )
        )

    async def run(self, call: Callable[[JobQueue], Awaitable[T]]) -> T:
        """`await call(queue)` on the background loop, from any event loop: e.g. a readiness check's
        `await project.run(lambda jobs: jobs.depth())`, which a queue bound to another loop would fail."""
        bound = self.required()
        return await bound.acall(_awaited(call(bound.portal_queue)))

    def run_sync(self, call: Callable[[JobQueue], Awaitable[T]]) -> T:
        """`run()` for sync code: waits for `call(queue)` on the background loop."""
        bound = self.required()
        return bound.call(_awaited(call(bound.portal_queue)))

    def close(self) -> None:
        """Close the queue's connections and stop its background loop (it starts again when used)."""
        with self._lock:
            old, self._bound = self._bound, None
        if old is not None:
            old.close()


async def _awaited(value: Awaitable[T]) -> T:
    return await value
