"""Django SQL instrumentation under a real ASGI server (uvicorn): async and sync views' statements
and lazy loads, run in sync_to_async threads, reach the request they belong to."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """uvicorn serving tests/django/sql_asgi.py on 127.0.0.1; stopped by pid afterwards."""
    port = free_port()
    env = {**os.environ, "PERFKIT_TEST_SQL_DB": str(tmp_path / "db.sqlite3"),
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "tests.django.sql_asgi:application", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "info", "--lifespan", "off"],
        cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stderr is not None
    try:
        for line in proc.stderr:  # uvicorn logs this once the socket is listening
            if "Uvicorn running on" in line:
                break
        else:
            raise RuntimeError(f"uvicorn exited with {proc.wait(timeout=10)}")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stderr.close()


def test_statements_and_lazy_loads_reach_the_request_under_uvicorn(server: str) -> None:
    """Under uvicorn: the async view's 3 statements and the sync view's 3 are each request's db
    count; the async view's N+1 (lazy loads in a thread) is a finding for its route."""
    with httpx.Client(base_url=server, timeout=20) as client:
        for path in ("/async/", "/tickets/"):
            response = client.get(path)
            assert response.status_code == 200 and response.text == "acme"
            assert response.headers["x-db-count"] == "3", path
        naive = client.get("/async-naive/")
        assert naive.headers["x-db-count"] == "5"  # the tickets, then one organization per ticket
        found = client.get("/findings/").json()["n_plus_one"]
    assert [(f["relationship"], f["route"], f["fix"]) for f in found] == [
        ("Ticket.organization", "/async-naive/", 'select_related("organization")')
    ]
