"""`manage.py perfkit_worker` as a real process: it runs the jobs views queued on commit, reading their rows,
inside Django's connection cycle, and stops on SIGTERM after the job in hand.

The worker (`python -m django perfkit_worker --settings tests.django.jobs_settings`) uses this process's
PostgreSQL test database as its `default`, and the job queue of the test, on SQLite and on Redis.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connections

from perfkit.django.jobs import get_queue, project
from perfkit.jobs import JobInfo, Status
from tests.conftest import eventually, require_postgres
from tests.django._jobs import JOB_BACKENDS, ROOT, drop, process_env, queue_url
from tests.django.jobs_app.tasks import (
    QUEUE,
    async_jobs_closed,
    sync_jobs_closed,
    ticket_title,
    ticket_title_async,
    work_for,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(120)]
PG = pytest.mark.django_db(databases=["default", "pg"], transaction=True)


class WorkerProcess:
    """One `perfkit_worker` process; its output goes to a file (a full pipe would block it)."""

    def __init__(self, jobs_url: str, tmp_path: Path, *args: str, conn_max_age: str = "0") -> None:
        env = process_env(jobs_url, connections["pg"].settings_dict["NAME"], conn_max_age)
        self.log = tmp_path / "worker.log"
        settings = "tests.django.jobs_settings"
        command = [sys.executable, "-m", "django", "perfkit_worker", "--settings", settings,
                   "--queues", QUEUE, "--concurrency", "1", *args]  # fmt: skip
        with open(self.log, "w") as out:
            self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log.read_text()

    def stop(self) -> int:
        """SIGTERM, then the exit status (killed after 30 s: a worker that hangs fails the test)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
            raise AssertionError(f"the worker ignored SIGTERM for 30 s:\n{self.output()[-3000:]}") from None


@pytest.fixture
def jobs_url(request: pytest.FixtureRequest, tmp_path: Path, settings: Any) -> Iterator[str]:
    """PERFKIT['jobs'] of this process on the backend asked for (SQLite unless parametrized)."""
    require_postgres()
    url = queue_url(getattr(request, "param", "sqlite"), tmp_path)
    settings.PERFKIT = {"monitor": {"token": "test-token"}, "jobs": url}
    yield url
    project.close()
    drop(url)


@pytest.fixture
def worker_for(tmp_path: Path) -> Iterator[Any]:
    """Start workers on a URL; each is stopped (SIGTERM, by pid) after the test."""
    started: list[WorkerProcess] = []

    def start(url: str, *args: str, conn_max_age: str = "0") -> WorkerProcess:
        worker = WorkerProcess(url, tmp_path, *args, conn_max_age=conn_max_age)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def finished(job_id: str, worker: WorkerProcess, within: float = 30.0) -> JobInfo:
    """The job once it is over (a worker in another process runs it: poll its state)."""
    queue = get_queue()
    assert queue is not None
    facade = queue.sync()
    done: list[JobInfo] = []

    async def over() -> bool:
        if worker.process.poll() is not None:
            raise AssertionError(f"the worker exited early:\n{worker.output()[-3000:]}")
        job = facade.get(job_id)
        if job is not None and job.status in (Status.SUCCEEDED, Status.FAILED, Status.DEAD):
            done.append(job)
            return True
        return False

    asyncio.run(eventually(over, timeout=within, what=f"job {job_id} finished", max_interval=0.05))
    return done[0]


def run_job(task: Any, worker: WorkerProcess, *args: Any) -> Any:
    """Queue `task(*args)` now and return its result, asserting it succeeded."""
    job = finished(task.enqueue_sync(*args).id, worker)
    assert job.status == Status.SUCCEEDED, job.error
    return job.result


def queued_ids() -> list[str]:
    queue = get_queue()
    assert queue is not None
    return [j.id for j in queue.sync().list(queue=QUEUE, limit=100)[0]]


@PG
@pytest.mark.parametrize("jobs_url", JOB_BACKENDS, indirect=True)
def test_worker_runs_what_a_view_queued_on_commit(
    jobs_url: str, worker_for: Any, client: Any, settings: Any
) -> None:
    """A view writes a ticket and queues a job on commit; the worker (a real process, with the apps' tasks
    modules found) reads the committed row, in a sync task and in an async one, and closes each
    connection after its job (CONN_MAX_AGE=0), as Django's request cycle does."""
    settings.ROOT_URLCONF = "tests.django.jobs_urls"
    worker = worker_for(jobs_url)
    ticket = client.get("/create/?title=printer%20on%20fire&db=pg").json()["ticket"]
    (job_id,) = queued_ids()
    job = finished(job_id, worker)
    assert (job.type, job.status) == (ticket_title.name, Status.SUCCEEDED), job.error
    assert job.result == {"title": "printer on fire", "open_during_job": True}
    assert run_job(sync_jobs_closed, worker) == [True]  # the sync job's worker thread: closed after it
    before = set(queued_ids())
    second = client.get("/create/?title=async%20read&db=pg&async=1").json()["ticket"]
    (async_id,) = set(queued_ids()) - before
    job = finished(async_id, worker)
    assert (job.type, job.result) == (
        ticket_title_async.name,
        {"title": "async read", "open_during_job": True},
    )
    assert run_job(ticket_title_async, worker, ticket)["title"] == "printer on fire"
    assert second != ticket
    assert run_job(async_jobs_closed, worker) == [True, True]  # the async ORM's thread: closed after each
    assert "tests.django.jobs_app.tasks" in worker.output()  # found by autodiscovery


@PG
def test_persistent_connections_are_kept(jobs_url: str, worker_for: Any, client: Any, settings: Any) -> None:
    """With CONN_MAX_AGE=None the connection a job used stays open for the next one (recycled, not
    closed): the cycle follows the project's setting, as Django's does."""
    settings.ROOT_URLCONF = "tests.django.jobs_urls"
    worker = worker_for(jobs_url, conn_max_age="none")
    ticket = client.get("/create/?title=kept&db=pg").json()["ticket"]
    (job_id,) = queued_ids()
    assert finished(job_id, worker).result == {"title": "kept", "open_during_job": True}
    assert run_job(sync_jobs_closed, worker) == [False]
    assert run_job(ticket_title, worker, ticket)["title"] == "kept"


@PG
def test_sigterm_finishes_the_job_in_hand(jobs_url: str, worker_for: Any) -> None:
    """SIGTERM while a job runs: the worker takes no new job, finishes that one, and exits 0."""
    worker = worker_for(jobs_url, "--grace", "20")
    queue = get_queue()
    assert queue is not None
    job = work_for.enqueue_sync(1.5)
    later = work_for.enqueue_sync(0.1)

    async def running() -> bool:
        info = queue.sync().get(job.id)
        return info is not None and info.status == Status.RUNNING and info.progress > 0

    asyncio.run(eventually(running, timeout=30, what="the job started", max_interval=0.02))
    worker.process.send_signal(signal.SIGTERM)
    # one SIGTERM only: `worker.stop()` would send a second one if the worker is still finishing, and a
    # second signal hurries the worker (the job goes back to the queue), which is another behaviour
    assert worker.process.wait(timeout=30) == 0, worker.output()[-3000:]
    done = queue.sync().get(job.id)
    assert done is not None and (done.status, done.result) == (Status.SUCCEEDED, "finished")
    left = queue.sync().get(later.id)
    assert left is not None and left.status == Status.QUEUED  # not started after the stop


def test_without_the_setting_the_command_names_it(tmp_path: Path) -> None:
    """`perfkit_worker` with no PERFKIT['jobs'] exits 1 and says which setting to add."""
    env = process_env(None, "unused")
    done = subprocess.run(
        [sys.executable, "-m", "django", "perfkit_worker", "--settings", "tests.django.jobs_settings"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1 and "PERFKIT['jobs'] is not set" in done.stderr, done.stderr


@PG
def test_burst_with_named_modules_only(jobs_url: str, worker_for: Any) -> None:
    """`--discover '' --import MODULE --burst`: only the named module's tasks are loaded, the queued job
    runs, and the worker exits 0 by itself once the queue is empty."""
    job = work_for.enqueue_sync(0)
    worker = worker_for(jobs_url, "--burst", "--discover", "", "--import", "tests.django.jobs_app.tasks")
    assert worker.process.wait(timeout=60) == 0, worker.output()[-3000:]
    queue = get_queue()
    assert queue is not None
    done = queue.sync().get(job.id)
    assert done is not None and (done.status, done.result) == (Status.SUCCEEDED, "finished")
    assert "tasks from tests.django.jobs_app.tasks:" in worker.output()
