"""What `manage.py perfkit_worker` runs: the tasks found, and each job inside Django's connection cycle.

Django closes a request's database connections when they are unusable or older than `CONN_MAX_AGE`
(`close_old_connections()` on `request_started` and `request_finished`); a worker does the same around
every job, in the thread the job's ORM calls run in: a sync task's worker thread, or for an async task
the thread `sync_to_async` (and so Django's async ORM) uses.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from importlib import import_module
from typing import Any

from perfkit.jobs import JobQueue, Task
from perfkit.jobs.registry import TaskRegistry

__all__ = ["discover", "in_connection_cycle", "worker_queue"]


def discover(module: str = "tasks", extra: Iterable[str] = ()) -> list[str]:
    """Import `<app>.<module>` of every installed app that has one (as Celery's autodiscover and
    Django admin's `autodiscover_modules` do), then each of `extra`; returns what was imported."""
    from django.apps import apps
    from django.utils.module_loading import module_has_submodule

    found = []
    if module:
        for app in apps.get_app_configs():
            if module_has_submodule(app.module, module):
                found.append(f"{app.name}.{module}")
    found += list(extra)
    for name in found:
        import_module(name)
    return found


def in_connection_cycle(func: Callable[..., Any], is_async: bool) -> Callable[..., Any]:
    """`func` with `close_old_connections()` before and after it, in the thread its queries use."""
    from asgiref.sync import sync_to_async
    from django.db import close_old_connections

    if is_async:

        async def run_async(*args: Any, **kwargs: Any) -> Any:
            await sync_to_async(close_old_connections)()
            try:
                return await func(*args, **kwargs)
            finally:
                await sync_to_async(close_old_connections)()

        return functools.wraps(func)(run_async)

    def run(*args: Any, **kwargs: Any) -> Any:
        close_old_connections()
        try:
            return func(*args, **kwargs)
        finally:
            close_old_connections()

    return functools.wraps(func)(run)


def worker_queue(queue: JobQueue) -> JobQueue:
    """A sibling of `queue` (same config and hooks, its own connection) whose tasks run each job inside
    Django's connection cycle; the tasks the project registered are left as they are."""
    twin = queue.sibling()
    registry = TaskRegistry()
    for t in queue.registry.tasks.values():
        registry.add(Task(twin, in_connection_cycle(t.func, t.is_async), t.name, t.options))
    for periodic in queue.registry.periodic:
        registry.add_periodic(registry.tasks[periodic.task.name], periodic.cron)
    twin.registry = registry
    return twin
