"""Jobs from Django in-process: the project queue, enqueue from sync and async views, on commit only."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import transaction

from perfkit.django.conf import parse
from perfkit.django.jobs import enqueue_on_commit, enqueue_sync, get_queue, project
from perfkit.errors import ConfigurationError, PerfkitError, SerializationError
from perfkit.jobs import JobQueue, Status
from tests.conftest import free_port
from tests.django._jobs import JOB_BACKENDS, drop, queue_url
from tests.django.jobs_app.tasks import QUEUE, ticket_title, ticket_title_async

TOKEN = {"token": "test-token"}


@pytest.fixture
def jobs_at(settings: Any) -> Iterator[Any]:
    """Point PERFKIT['jobs'] at a URL; the project's queue is closed after the test."""
    urls: list[str] = []

    def point(url: str) -> JobQueue:
        settings.PERFKIT = {"monitor": TOKEN, "jobs": url}
        urls.append(url)
        queue = get_queue()
        assert queue is not None and queue.url == url
        return queue

    yield point
    project.close()
    for url in urls:
        drop(url)


@pytest.fixture(params=JOB_BACKENDS)
def queue(request: pytest.FixtureRequest, tmp_path: Path, jobs_at: Any) -> JobQueue:
    """The project's queue on each backend."""
    q: JobQueue = jobs_at(queue_url(request.param, tmp_path))
    assert q.url.split(":")[0] == request.param  # the backend asked for, not a default
    return q


def queued(q: JobQueue) -> list[Any]:
    """Every job of the test queue, oldest first."""
    jobs, _ = q.sync().list(queue=QUEUE, limit=100)
    return sorted(jobs, key=lambda j: j.queued_at)


def test_no_setting_no_queue() -> None:
    """Without PERFKIT['jobs'] there is no queue, and enqueueing says which setting is missing."""
    assert get_queue() is None
    with pytest.raises(ConfigurationError) as err:
        ticket_title.enqueue_sync(1)
    assert err.value.setting == "PERFKIT['jobs']"


@pytest.mark.parametrize(
    "raw",
    [3, "ftp://example.com/q", "no-scheme", {"url": 5}, {"url": "sqlite:///j.db", "lease": "0.1s"}],
)
def test_bad_jobs_setting_names_the_key(raw: object) -> None:
    """A malformed PERFKIT['jobs'] (type, scheme, keyword, value) fails at start-up naming the key."""
    with pytest.raises(ConfigurationError) as err:
        parse({"jobs": raw})
    assert err.value.setting == "PERFKIT['jobs']"


def test_jobs_setting_takes_jobsconfig_keywords(tmp_path: Path) -> None:
    """A dict of JobsConfig keywords is accepted: the URL and the other settings land in the config."""
    config = parse({"jobs": {"url": f"sqlite:///{tmp_path}/j.db", "lease": "5s", "default_queue": "dj"}}).jobs
    assert (config.url, config.lease, config.default_queue) == (f"sqlite:///{tmp_path}/j.db", 5.0, "dj")


def test_one_queue_per_process_rebuilt_when_the_setting_changes(jobs_at: Any, tmp_path: Path) -> None:
    """get_queue() is the same object each time; a new PERFKIT['jobs'] gives a new one with the same tasks."""
    first = jobs_at(f"sqlite:///{tmp_path}/a.db")
    assert get_queue() is first
    second = jobs_at(f"sqlite:///{tmp_path}/b.db")
    assert second is not first and get_queue() is second
    assert second.tasks[ticket_title.name] is ticket_title


def test_sync_view_enqueues(queue: JobQueue, client: Any, settings: Any) -> None:
    """A sync view queues with `task.enqueue_sync(...)` under the test client: the job is stored."""
    settings.ROOT_URLCONF = "tests.django.jobs_urls"
    body = client.get("/enqueue-sync/?ticket=5").json()
    assert body["status"] == "queued"
    job = queue.sync().get(body["job"])
    assert job is not None and (job.type, job.args, job.status) == (ticket_title.name, (5,), Status.QUEUED)


def test_async_view_enqueues_on_every_loop_django_makes(queue: JobQueue, client: Any, settings: Any) -> None:
    """An async view awaits `task.enqueue(...)`; Django's sync client runs it on a new event loop per
    request, and each request's job is stored (a queue bound to the first loop would fail the second)."""
    settings.ROOT_URLCONF = "tests.django.jobs_urls"
    ids = [client.get(f"/enqueue-async/?ticket={n}").json()["job"] for n in (1, 2, 3)]
    assert [j.id for j in queued(queue)] == ids


async def test_async_client_enqueues(queue: JobQueue, async_client: Any, settings: Any) -> None:
    """Under Django's async test client (ASGI), the async view's enqueue lands in the queue."""
    settings.ROOT_URLCONF = "tests.django.jobs_urls"
    first = (await async_client.get("/enqueue-async/?ticket=7")).json()
    second = (await async_client.get("/enqueue-async/?ticket=8")).json()
    jobs = [queue.sync().get(body["job"]) for body in (first, second)]
    assert [(j.args, j.status) for j in jobs if j is not None] == [
        ((7,), Status.QUEUED),
        ((8,), Status.QUEUED),
    ]


@pytest.mark.django_db(transaction=True)
def test_enqueue_on_commit_waits_for_the_commit(queue: JobQueue) -> None:
    """Inside a real transaction nothing is queued until COMMIT; then the job is."""
    with transaction.atomic():
        ticket_title.enqueue_on_commit(11)
        assert queued(queue) == []
    assert [j.args for j in queued(queue)] == [(11,)]


@pytest.mark.django_db(transaction=True)
def test_rollback_enqueues_nothing(queue: JobQueue, client: Any, settings: Any) -> None:
    """A view whose transaction rolls back queues nothing; the one that commits queues its ticket's job."""
    from tests.django.tickets.models import Ticket

    settings.ROOT_URLCONF = "tests.django.jobs_urls"
    assert client.get("/create/?title=lost&fail=1").status_code == 409
    assert queued(queue) == [] and not Ticket.objects.exists()
    ticket = client.get("/create/?title=kept").json()["ticket"]
    assert [(j.type, j.args) for j in queued(queue)] == [(ticket_title.name, (ticket,))]


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_savepoint_drops_only_its_jobs(queue: JobQueue) -> None:
    """A job queued in a savepoint that rolls back is dropped; the outer transaction's job is queued."""
    with transaction.atomic():
        enqueue_on_commit(ticket_title, 1)
        try:
            with transaction.atomic():
                ticket_title_async.enqueue_on_commit(2)
                raise RuntimeError("roll the savepoint back")
        except RuntimeError:
            pass
    assert [(j.type, j.args) for j in queued(queue)] == [(ticket_title.name, (1,))]


@pytest.mark.django_db(transaction=True)
def test_unserializable_arguments_fail_in_the_view(queue: JobQueue) -> None:
    """Arguments the queue cannot carry raise at `enqueue_on_commit`, not after the commit."""
    with pytest.raises(SerializationError, match="ticket_title"), transaction.atomic():
        ticket_title.enqueue_on_commit(object())
    assert queued(queue) == []


def test_plain_jobqueue_tasks_and_names(queue: JobQueue, tmp_path: Path) -> None:
    """`enqueue_sync` takes a project task's registered name, and a task of a plain JobQueue too."""
    assert enqueue_sync(ticket_title.name, 3).args == (3,)
    plain = JobQueue(f"sqlite:///{tmp_path}/plain.db")

    @plain.task(queue=QUEUE)
    def ping(ctx: Any) -> str:
        return "pong"

    try:
        job = enqueue_sync(ping)
        assert plain.sync().get(job.id) is not None
    finally:
        plain.sync().close()


@pytest.mark.django_db(transaction=True)
def test_queue_down_after_commit_is_logged_not_raised(
    jobs_at: Any, client: Any, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis down: the view's commit stands and it answers; the lost job is logged by task name (never
    its arguments); `robust=False` raises instead, and `enqueue_sync` raises perfkit's error."""
    from tests.django.tickets.models import Ticket

    jobs_at(f"redis://127.0.0.1:{free_port()}/0")
    settings.ROOT_URLCONF = "tests.django.jobs_urls"
    with caplog.at_level(logging.ERROR, logger="perfkit.django.jobs"):
        response = client.get("/create/?title=secret-title")
    assert response.status_code == 200 and Ticket.objects.filter(title="secret-title").exists()
    assert ticket_title.name in caplog.text and "was not queued" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="perfkit.django.jobs"), transaction.atomic():
        ticket_title.enqueue_on_commit(987654321)
    assert "was not queued" in caplog.text and "987654321" not in caplog.text
    with pytest.raises(PerfkitError):
        ticket_title.enqueue_sync(1)
    with pytest.raises(PerfkitError), transaction.atomic():
        ticket_title.enqueue_on_commit(1, robust=False)


def test_a_forked_child_gets_its_own_queue(queue: JobQueue) -> None:
    """After a fork (gunicorn --preload) the child enqueues through a queue of its own (the parent's loop
    thread does not exist there: waiting on it would hang), and the parent's queue still works after it."""
    import multiprocessing
    import warnings

    assert ticket_title.enqueue_sync(1).args == (1,)  # the parent's background loop is running
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12: fork() of a process with threads
        child = multiprocessing.get_context("fork").Process(target=_enqueue_in_child, daemon=True)
        child.start()
    child.join(timeout=40)
    if child.exitcode is None:
        child.kill()
        child.join(timeout=5)
    assert child.exitcode == 0, f"the child could not enqueue (exit code {child.exitcode})"
    assert sorted(j.args for j in queued(queue)) == [(1,), (2,)]
    assert ticket_title.enqueue_sync(3).args == (3,)  # and the parent's own queue still works


def _enqueue_in_child() -> None:
    import gc

    ticket_title.enqueue_sync(2)
    gc.collect()  # whatever the child dropped is finalized now: the parent's connections must survive it
    os._exit(0)


def test_run_reaches_the_queue_from_any_loop(queue: JobQueue) -> None:
    """`project.run(...)` awaits a queue call from each new event loop (as a readiness check under
    Django's adaptation would), and `run_sync` from sync code; both see the same jobs."""
    import asyncio

    ticket_title.enqueue_sync(4)
    depths = [asyncio.run(project.run(lambda jobs: jobs.depth())) for _ in range(2)]
    assert depths[0] == depths[1] == project.run_sync(lambda jobs: jobs.depth())
    assert sum(depths[0].values()) == 1
