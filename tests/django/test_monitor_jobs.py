"""The monitor of a Django project with PERFKIT['jobs'] reports the project's job queue in readiness."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from perfkit.django import monitoring
from perfkit.django.jobs import enqueue_sync, project
from tests.django._jobs import drop, queue_url
from tests.django.jobs_app.tasks import ticket_title
from tests.django.web_support import configure

pytestmark = [pytest.mark.urls("tests.django.web_urls"), pytest.mark.django_db]
TOKEN = {"Authorization": "Bearer test-token"}


@pytest.fixture(params=["sqlite", "redis"])
def with_jobs(request: pytest.FixtureRequest, settings: Any, tmp_path: Path) -> Iterator[str]:
    """The test project with the middleware, a monitor token and a job queue of each backend."""
    url = queue_url(request.param, tmp_path)
    configure(settings)
    settings.PERFKIT = {"monitor": {"token": "test-token"}, "jobs": url, "databases": ["default"]}
    yield url
    monitoring.stop()
    project.close()
    drop(url)


def test_readiness_reports_the_job_queue(client: Any, with_jobs: str) -> None:
    """A job queued from sync code shows in /perf/health/ready's jobs check, on every call (the
    monitor's loop and the enqueue loop are different threads)."""
    enqueue_sync(ticket_title, 1)
    enqueue_sync(ticket_title, 2)
    for _ in range(2):
        body = client.get("/perf/health/ready", headers=TOKEN).json()
        assert body["checks"]["jobs"]["status"] == "pass", body["checks"]["jobs"]
        assert body["checks"]["jobs"]["message"].startswith("2 jobs ready")
