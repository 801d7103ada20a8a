"""The tasks the job tests run: found by `manage.py perfkit_worker` (this app's `tasks` module), imported
by the tests to enqueue them. They read the shared ticket models and report on the worker's connections."""

from __future__ import annotations

import time
from typing import Any

from asgiref.sync import sync_to_async
from django.db import connections

from perfkit.django.jobs import task
from tests.django.tickets.models import Ticket

QUEUE = "dj-jobs"
# the connection wrappers (one per thread) earlier jobs ran their queries on, by the kind of task
USED: dict[str, list[Any]] = {"sync": [], "async": []}


@task(queue=QUEUE)
def ticket_title(ctx: Any, ticket_id: int) -> dict[str, Any]:
    """The ticket's title, read in the worker thread (a sync task)."""
    title = Ticket.objects.get(pk=ticket_id).title
    wrapper = connections["default"]
    USED["sync"].append(wrapper)
    return {"title": title, "open_during_job": wrapper.connection is not None}


def _wrapper() -> Any:
    return connections["default"]


@task(queue=QUEUE)
async def ticket_title_async(ctx: Any, ticket_id: int) -> dict[str, Any]:
    """The ticket's title, read with the async ORM (its queries run in the thread `sync_to_async` uses)."""
    ticket = await Ticket.objects.aget(pk=ticket_id)
    wrapper = await sync_to_async(_wrapper)()
    USED["async"].append(wrapper)
    return {"title": ticket.title, "open_during_job": wrapper.connection is not None}


@task(queue=QUEUE)
async def sync_jobs_closed(ctx: Any) -> list[bool]:
    """For each connection an earlier sync job used (in a worker thread): is it closed now? (An async
    task: its own connection cycle runs in another thread, so it cannot be what closed them.)"""
    return [wrapper.connection is None for wrapper in USED["sync"]]


@task(queue=QUEUE)
def async_jobs_closed(ctx: Any) -> list[bool]:
    """For each connection an earlier async job used (the `sync_to_async` thread): is it closed now?"""
    return [wrapper.connection is None for wrapper in USED["async"]]


@task(queue=QUEUE)
def work_for(ctx: Any, seconds: float) -> str:
    """A job that takes `seconds` (the job in hand when the worker is told to stop); it reports progress
    as it starts, so a test knows it runs (a claimed job is `running` before it starts)."""
    ctx.progress_sync(0.01, "started")
    time.sleep(seconds)
    return "finished"
