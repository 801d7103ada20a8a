"""The hub's readiness in a Django ASGI project's `/perf/health/ready`, under a real uvicorn process:
Django's monitor runs its checks on perfkit's background loop, the hub lives on the server's loop, and
`RealtimeRouter` registered the hub. Its Redis is a redis-server of the test's own, stopped and started."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from perfkit.realtime.client import Client
from tests import _redis_server
from tests.conftest import eventually, free_port, service_missing

from .test_realtime_asgi import SESSION_COOKIE, Project

ROOT = Path(__file__).resolve().parents[2]
TOKEN = {"Authorization": "Bearer test-token"}

pytestmark = pytest.mark.slow


class OwnRedis:
    def __init__(self, folder: Path) -> None:
        self.port, self.folder = free_port(), folder
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.proc = _redis_server.start(self.port, "--dir", str(self.folder))

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    try:
        server = OwnRedis(tmp_path)
    except FileNotFoundError:
        service_missing("redis-server is not installed (apt-get install redis-server)")
    yield server
    server.stop()


@pytest.fixture
def project(own_redis: OwnRedis, tmp_path: Path) -> Iterator[Project]:
    """uvicorn serving the Django project (RealtimeRouter, monitor on) with the hub on `own_redis`."""
    port = free_port()
    env = {**os.environ, "PERFKIT_TEST_RT_DB": str(tmp_path / "db.sqlite3"), "RT_ROUTER": "perfkit",
           "RT_MONITOR": "1", "RT_URL": f"redis://127.0.0.1:{own_redis.port}/0",
           "PERFKIT_MONITOR_URL": f"sqlite:///{tmp_path}/monitor.db",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "tests.django.realtime_asgi:application", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "info", "--ws", "websockets-sansio",
         "--timeout-graceful-shutdown", "3"],
        cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stderr is not None
    log: list[str] = []
    try:
        for line in proc.stderr:
            log.append(line)
            if "Uvicorn running on" in line:
                break
        else:
            raise RuntimeError(f"uvicorn exited with {proc.wait(timeout=10)}: {''.join(log)}")
        yield Project(f"http://127.0.0.1:{port}")
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        proc.stderr.close()


async def _ready(http: httpx.AsyncClient) -> tuple[int, dict[str, Any]]:
    response = await http.get("/perf/health/ready", headers=TOKEN)
    return response.status_code, response.json()["checks"]["realtime"]


async def test_readiness_follows_the_hubs_redis(own_redis: OwnRedis, project: Project) -> None:
    """Ready before any connection (the hub's broker answers), ready with the live connection counted
    once one is open (asked on the hub's own loop), not ready (503, the check failing) while its Redis
    is stopped, ready again once it is back."""
    cookie, user = project.login("alice")
    headers = {"Cookie": f"{SESSION_COOKIE}={cookie}"}
    async with httpx.AsyncClient(base_url=project.http, timeout=15) as http:
        status, check = await _ready(http)
        assert status == 200 and check["status"] == "pass", check
        async with Client(project.ws, channels=[f"user:{user}"], headers=headers) as client:
            await client.subscribe("org:1")
            status, check = await _ready(http)
            assert status == 200 and check["status"] == "pass", check
            assert check["details"]["connections"] == 1 and check["details"]["channels"] == 2, check
            own_redis.stop()

            async def down() -> bool:
                status, check = await _ready(http)
                return status == 503 and check["status"] == "fail"

            await eventually(down, timeout=15, what="not ready while Redis is down", max_interval=0.2)
            own_redis.start()

            async def up() -> bool:
                status, check = await _ready(http)
                return status == 200 and check["status"] == "pass"

            await eventually(up, timeout=20, what="ready once Redis is back", max_interval=0.2)
