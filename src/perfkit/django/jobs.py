"""Jobs from Django: the project's queue (`PERFKIT["jobs"]`), its tasks, and enqueueing from any view.

    # myapp/tasks.py: `manage.py perfkit_worker` imports every installed app's `tasks` module
    from perfkit.django.jobs import task

    @task(queue="email", retries=3)
    def send_receipt(ctx, ticket_id: int) -> str:
        return Ticket.objects.get(pk=ticket_id).title

    def create_ticket(request):                    # a sync view (WSGI): no event loop of your own
        with transaction.atomic():
            ticket = Ticket.objects.create(...)
            send_receipt.enqueue_on_commit(ticket.pk)   # queued after COMMIT; nothing on rollback
        send_receipt.enqueue_sync(ticket.pk)            # queued now

    async def acreate(request):                    # an async view (ASGI, or Django's adaptation)
        await send_receipt.enqueue(ticket_id)

Every enqueue (sync or async, from any thread or event loop) runs on one background loop per process,
the project queue's sync facade (`get_queue().sync()`): Django runs async views on a new event loop per
request under WSGI and per test under its test client, and a queue's connections belong to the loop that
opened them. Async callers await it without blocking their own loop.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from perfkit.django.jobs_project import ProjectJobs
from perfkit.errors import ConfigurationError, SerializationError
from perfkit.jobs import JobInfo, JobQueue, Priority, Task
from perfkit.redaction import redact

__all__ = [
    "DjangoTask",
    "ProjectJobs",
    "enqueue_on_commit",
    "enqueue_sync",
    "get_queue",
    "project",
    "task",
]

logger = logging.getLogger("perfkit.django.jobs")


class DjangoTask(Task):
    """A project task: `await t.enqueue(...)`, `t.enqueue_sync(...)`, `t.enqueue_on_commit(...)`."""

    def enqueue_sync(
        self,
        *args: Any,
        delay: float | str | None = None,
        at: datetime | float | None = None,
        priority: Priority | str | int | None = None,
        key: str | None = None,
        **kwargs: Any,
    ) -> JobInfo:
        """Queue one run now and return its JobInfo, from sync code (no event loop needed)."""
        return enqueue_sync(self, *args, delay=delay, at=at, priority=priority, key=key, **kwargs)

    def enqueue_on_commit(
        self,
        *args: Any,
        using: str | None = None,
        robust: bool = True,
        delay: float | str | None = None,
        at: datetime | float | None = None,
        priority: Priority | str | int | None = None,
        key: str | None = None,
        **kwargs: Any,
    ) -> None:
        """Queue one run when the transaction on `using` commits; see `enqueue_on_commit`."""
        enqueue_on_commit(
            self, *args, using=using, robust=robust, delay=delay, at=at, priority=priority, key=key,
            **kwargs,
        )  # fmt: skip


project = ProjectJobs(DjangoTask)
task = project.task


def get_queue() -> JobQueue | None:
    """The project's JobQueue (one per process, built from `PERFKIT["jobs"]`); None when not set.

    Its async methods belong to the first event loop that uses them; from Django code prefer the task
    methods here, or `get_queue().sync()` (the background loop every enqueue here runs on).
    """
    return project.queue()


def _resolve(task: Task | str) -> Task:
    if isinstance(task, Task):
        return task
    if isinstance(task, str):
        return project.registry.named(task)
    raise ConfigurationError("task", f"{task!r} is not a task or a registered task name")


def enqueue_sync(
    task: Task | str,
    *args: Any,
    delay: float | str | None = None,
    at: datetime | float | None = None,
    priority: Priority | str | int | None = None,
    key: str | None = None,
    **kwargs: Any,
) -> JobInfo:
    """Queue `task` (a project task, a plain `JobQueue`'s task, or a registered name) from sync code."""
    t = _resolve(task)
    options: dict[str, Any] = {"delay": delay, "at": at, "priority": priority, "key": key}
    if isinstance(t.jobs, JobQueue):
        return t.jobs.sync().enqueue(t, *args, **options, **kwargs)
    if isinstance(t.jobs, ProjectJobs):
        return t.jobs.enqueue_sync(t, *args, **options, **kwargs)
    raise ConfigurationError("task", f"{t!r} belongs to neither a JobQueue nor the project")


def _check_payload(t: Task, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Refuse arguments the queue cannot carry now, in the view, rather than after the commit."""
    queue = t.jobs if isinstance(t.jobs, JobQueue) else project.required().queue
    try:
        queue.serializer.dumps([list(args), kwargs])
    except (TypeError, ValueError, OverflowError) as exc:
        raise SerializationError(
            f"task {t.name!r}: arguments cannot be serialized with {queue.serializer.name}: {exc}"
        ) from exc


def enqueue_on_commit(
    task: Task | str,
    *args: Any,
    using: str | None = None,
    robust: bool = True,
    delay: float | str | None = None,
    at: datetime | float | None = None,
    priority: Priority | str | int | None = None,
    key: str | None = None,
    **kwargs: Any,
) -> None:
    """Queue `task` when the current transaction on database `using` commits: the job never runs before
    the data it reads is committed, and a rollback queues nothing. Outside a transaction (autocommit) it
    is queued at once, as Django runs `on_commit` callbacks.

    The arguments are checked now. With `robust` (the default) a queue that is down after the commit is
    logged (the task's name, never its arguments) and the response goes on; `robust=False` raises, as
    Django's own `on_commit` does. `using`, `robust`, `delay`, `at`, `priority` and `key` are options,
    not task arguments.
    """
    from django.db import transaction

    t = _resolve(task)
    _check_payload(t, args, kwargs)
    options: dict[str, Any] = {"delay": delay, "at": at, "priority": priority, "key": key}

    def send() -> None:
        try:
            enqueue_sync(t, *args, **options, **kwargs)
        except Exception as exc:
            if not robust:
                raise
            logger.error("perfkit: job %r was not queued after the commit: %s", t.name, redact(str(exc)))

    transaction.on_commit(send, using=using)
