"""Helpers of the job tests: a queue URL per backend that nobody else uses, and removing what it made."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from perfkit.jobs import JobQueue
from tests.conftest import REDIS_URL, require_redis

JOB_BACKENDS = [
    pytest.param("sqlite", marks=pytest.mark.sqlite, id="sqlite"),
    pytest.param("redis", marks=pytest.mark.redis, id="redis"),
]


def queue_url(kind: str, tmp_path: Path) -> str:
    """A job queue URL of `kind` with its own file or key prefix."""
    if kind == "sqlite":
        return f"sqlite:///{tmp_path}/jobs.db"
    require_redis()
    return f"{REDIS_URL}?prefix=pkdjtest-{uuid.uuid4().hex[:12]}"


def drop(url: str) -> None:
    """Delete the keys under a test Redis prefix (a SQLite queue lives in the test's tmp_path)."""
    if not url.startswith("redis") or "prefix=pkdjtest-" not in url:
        return

    async def run() -> None:
        queue = JobQueue(url)
        try:
            await queue.backend.drop()  # type: ignore[attr-defined]
        finally:
            await queue.close()

    asyncio.run(run())


ROOT = Path(__file__).resolve().parents[2]


def process_env(jobs_url: str | None, db_name: str, conn_max_age: str = "0") -> dict[str, str]:
    """The environment of a process the job tests start with tests/django/jobs_settings.py: this
    checkout on the path, the test process's PostgreSQL test database, the test's queue (None: unset)."""
    import os

    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}",
        "PERFKIT_TEST_DJ_DB": db_name,
        "PERFKIT_TEST_DJ_CONN_MAX_AGE": conn_max_age,
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.pop("PERFKIT_TEST_DJ_JOBS", None)
    if jobs_url is not None:
        env["PERFKIT_TEST_DJ_JOBS"] = jobs_url
    return env
