"""Views queue jobs under real servers: uvicorn (ASGI) and gunicorn (WSGI, two worker processes).

Both servers serve tests/django/jobs_urls.py with tests/django/jobs_settings.py: the test process's
PostgreSQL test database and the test's SQLite job queue, which this process then reads.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.db import connections

from perfkit.django.jobs import get_queue, project
from tests.conftest import eventually, free_port, require_postgres
from tests.django._jobs import ROOT, process_env, queue_url
from tests.django.jobs_app.tasks import QUEUE, ticket_title

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(120)]
SERVERS = {
    "uvicorn": ["-m", "uvicorn", "tests.django.jobs_asgi:application", "--log-level", "warning"],
    "gunicorn": ["-m", "gunicorn", "tests.django.jobs_wsgi:application", "--workers", "2"],
}


@pytest.fixture
def jobs_url(tmp_path: Path, settings: Any) -> Iterator[str]:
    require_postgres()
    url = queue_url("sqlite", tmp_path)
    settings.PERFKIT = {"monitor": {"token": "test-token"}, "jobs": url}
    yield url
    project.close()


def serve(kind: str, jobs_url: str, tmp_path: Path) -> tuple[subprocess.Popen[bytes], str, Path]:
    port = free_port()
    bind = (
        ["--host", "127.0.0.1", "--port", str(port)] if kind == "uvicorn" else ["--bind", f"127.0.0.1:{port}"]
    )
    log = tmp_path / f"{kind}.log"
    env = process_env(jobs_url, connections["pg"].settings_dict["NAME"])
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, *SERVERS[kind], *bind], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    return process, f"http://127.0.0.1:{port}", log


async def exercise(base: str, process: subprocess.Popen[bytes], log: Path) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:

        async def up() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"the server exited:\n{log.read_text()[-3000:]}")
            try:
                await client.get("/")
            except httpx.TransportError:
                return False
            return True

        await eventually(up, timeout=30, what="the server answering", max_interval=0.05)
        sync = await asyncio.gather(*(client.get(f"/enqueue-sync/?ticket={n}") for n in range(5)))
        async_ = await asyncio.gather(*(client.get(f"/enqueue-async/?ticket={n}") for n in range(5, 10)))
        rolled_back = await client.get("/create/?title=lost&fail=1")
        committed = await client.get("/create/?title=kept")
    return {
        "jobs": [r.json()["job"] for r in (*sync, *async_) if r.status_code == 200],
        "rolled_back": rolled_back.status_code,
        "ticket": committed.json()["ticket"],
    }


@pytest.mark.django_db(databases=["default", "pg"], transaction=True)
@pytest.mark.parametrize("kind", sorted(SERVERS))
def test_views_queue_jobs_under_a_real_server(kind: str, jobs_url: str, tmp_path: Path) -> None:
    """Under a real server, concurrent sync views (`enqueue_sync`) and async views (`await enqueue`) each
    queue their job, a view that commits queues its ticket's job, and one that rolls back queues none."""
    process, base, log = serve(kind, jobs_url, tmp_path)
    try:
        got = asyncio.run(exercise(base, process, log))
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    assert len(got["jobs"]) == 10, log.read_text()[-3000:]
    assert got["rolled_back"] == 409
    queue = get_queue()
    assert queue is not None
    jobs = {j.id: j for j in queue.sync().list(queue=QUEUE, limit=100)[0]}
    assert set(got["jobs"]) <= set(jobs) and len(jobs) == 11
    assert sorted(jobs[i].args[0] for i in got["jobs"]) == list(range(10))
    (on_commit,) = (j for i, j in jobs.items() if i not in got["jobs"])
    assert (on_commit.type, on_commit.args) == (ticket_title.name, (got["ticket"],))
