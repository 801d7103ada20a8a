"""The monitor's default store: the served app's SQLite file, but memory under a test runner, so an
app's test runs never write into the store its served processes report from."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

import perfkit
from perfkit.metrics import Collector
from perfkit.monitor import MonitorConfig
from perfkit.monitor.config import DEFAULT_URL, TEST_URL
from perfkit.monitor.monitor import Monitor
from perfkit.monitor.store import registry

SERVED = Path(".perfkit") / "monitor.db"


async def served_snapshots() -> list[str]:
    store = registry.create(DEFAULT_URL, "monitor_url")
    try:
        return sorted(proc for proc, _, _ in await store.snapshots())
    finally:
        await store.close()


async def publish_as_served_app() -> None:
    """What a served app's process leaves in the default store: its snapshot."""
    served = Monitor(MonitorConfig(url=DEFAULT_URL), collector=Collector())
    await served.publisher.flush()
    await served.close()


def test_a_test_client_run_writes_nothing_into_the_served_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An app with the default MonitorConfig, run by Starlette's TestClient (lifespan included) in the
    folder where the served app keeps .perfkit/monitor.db: that store gains no process and no route."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PERFKIT_MONITOR_URL", raising=False)
    asyncio.run(publish_as_served_app())
    before = asyncio.run(served_snapshots())
    assert len(before) == 1

    async def only_in_tests(request: Request) -> Response:
        return PlainTextResponse("test")

    app = perfkit.instrument(
        Starlette(routes=[Route("/only-in-tests", only_in_tests)]),
        collector=Collector(),
        monitor=MonitorConfig(token="t", publish_interval=0.05),
    )
    with TestClient(app) as client:
        assert client.get("/only-in-tests").status_code == 200
        report = client.get("/perf/report", headers={"authorization": "Bearer t"}).json()
        assert "GET /only-in-tests" in report["routes"]
        assert app.state.perfkit.monitor.store.kind == "memory"
    assert asyncio.run(served_snapshots()) == before


def test_explicit_store_wins_under_tests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store given in MonitorConfig(url=...) or PERFKIT_MONITOR_URL is used as given in a test too."""
    url = f"sqlite:///{tmp_path}/chosen.db"
    assert MonitorConfig(url=url).store_url() == url
    monkeypatch.setenv("PERFKIT_MONITOR_URL", url)
    assert MonitorConfig().store_url() == url
    monkeypatch.delenv("PERFKIT_MONITOR_URL")
    assert MonitorConfig().store_url() == TEST_URL


def test_served_process_keeps_the_sqlite_default(tmp_path: Path) -> None:
    """A process no test runner started (no pytest, no TestClient) uses sqlite:///.perfkit/monitor.db."""
    code = (
        "import asyncio\n"
        "from perfkit.monitor import MonitorConfig\n"
        "from perfkit.monitor.monitor import Monitor\n"
        "m = Monitor(MonitorConfig())\n"
        "print(m.config.store_url(), m.store.kind)\n"
        "async def main():\n"
        "    await m.store.ping()\n"
        "    await m.close()\n"
        "asyncio.run(main())\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_CURRENT_TEST", "PERFKIT_MONITOR_URL")}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [DEFAULT_URL, "sqlite"]
    assert (tmp_path / SERVED).exists()
