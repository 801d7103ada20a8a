"""Prometheus and the report across several worker processes sharing the monitor store (SQLite, Redis,
Redis Cluster)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from perfkit.monitor.store import registry
from tests.conftest import free_port

from ..conftest import REDIS_URL, eventually, require_redis
from .conftest import AUTH, TOKEN

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


async def start_worker(port: int, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "uvicorn", "tests.monitor.served_app:app", "--host", "127.0.0.1",
        "--port", str(port), "--log-level", "warning", cwd=ROOT, env=env,
    )  # fmt: skip


async def stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()


@pytest.fixture(params=[pytest.param("sqlite", marks=pytest.mark.sqlite),
                        pytest.param("redis", marks=pytest.mark.redis),
                        pytest.param("redis-cluster", marks=pytest.mark.redis_cluster)])  # fmt: skip
async def workers(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[list[str], list[asyncio.subprocess.Process]]]:
    """Two uvicorn processes on 127.0.0.1 sharing one monitor store; stopped by pid afterwards."""
    prefix = f"pktest-mp-{uuid.uuid4().hex[:10]}:"
    if request.param == "redis":
        require_redis()
        url = f"{REDIS_URL}?prefix={prefix}"
    elif request.param == "redis-cluster":
        url = f"{request.getfixturevalue('redis_cluster_url')}?prefix={prefix}"
    else:
        url = f"sqlite:///{tmp_path}/monitor.db"
    env = {**os.environ, "PERFKIT_MONITOR_URL": url, "PERFKIT_MONITOR_TOKEN": TOKEN}
    ports = [free_port(), free_port()]
    procs = [await start_worker(port, env) for port in ports]
    bases = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            for base in bases:

                async def up(base: str = base) -> bool:
                    with contextlib.suppress(httpx.TransportError):
                        return (await client.get(f"{base}/perf/health")).status_code == 200
                    return False

                await eventually(up, timeout=20, what=f"{base} up")
        yield bases, procs
    finally:
        for proc in procs:
            await stop(proc)
        if request.param != "sqlite":  # the workers' keys, under the prefix of this test only
            store = registry.create(url)
            await store.drop()  # type: ignore[attr-defined]
            await store.close()


def hello_count(text: str) -> tuple[float, float]:
    """(requests to /hello, processes) in an exposition."""
    count = processes = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "perfkit_http_request_duration_seconds_count" and s.labels["route"] == "/hello":
                count += s.value
            if s.name == "perfkit_monitor_processes":
                processes = s.value
    return count, processes


async def test_metrics_sum_every_worker(workers: tuple[list[str], list[Any]]) -> None:
    """Any worker's /perf/metrics and /perf/report count the requests served by all of them."""
    bases, procs = workers
    async with httpx.AsyncClient(timeout=5) as client:
        for _ in range(5):
            assert (await client.get(f"{bases[0]}/hello")).status_code == 200
        for _ in range(7):
            assert (await client.get(f"{bases[1]}/hello")).status_code == 200
        pids = {(await client.get(f"{b}/hello")).text for b in bases}
        assert len(pids) == 2, "two distinct processes answer"

        def scraped(base: str) -> Callable[[], Any]:
            async def check() -> bool:
                text = (await client.get(f"{base}/perf/metrics", headers=AUTH)).text
                return hello_count(text) == (14.0, 2.0)

            return check

        for base in bases:
            await eventually(scraped(base), timeout=15, what=f"{base} sees both workers")
        report = (await client.get(f"{bases[0]}/perf/report", headers=AUTH)).json()
        assert report["routes"]["GET /hello"]["requests"] == 14
        assert report["processes"] == 2
        await stop(procs[1])  # a stopped worker's counts stay in the total (counters never go back)

        async def after_stop() -> bool:  # B's last publish is stale after a few intervals
            text = (await client.get(f"{bases[0]}/perf/metrics", headers=AUTH)).text
            return hello_count(text) == (14.0, 1.0)

        await eventually(after_stop, timeout=30, what="totals kept, gauges dropped after a worker stopped")
