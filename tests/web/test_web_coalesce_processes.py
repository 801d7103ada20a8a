"""Coalescing across processes: two uvicorn processes sharing a Redis-backed response cache."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import redis

from tests.conftest import free_port

from .conftest import REDIS_URL
from .test_web_response_cache import redis_up

ROOT = Path(__file__).resolve().parents[2]
N = 40

pytestmark = [
    pytest.mark.redis,
    pytest.mark.slow,
    pytest.mark.skipif(not redis_up(), reason="Redis not reachable"),
]


def start_server(prefix: str) -> tuple[subprocess.Popen[str], int]:
    """One uvicorn process serving `_shared_cache_app`; returns once it says it is listening."""
    port = free_port()
    env = {**os.environ, "PERFKIT_TEST_REDIS_URL": REDIS_URL, "PERFKIT_TEST_PREFIX": prefix,
           "PERFKIT_TEST_N": str(N)}  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "tests.web._shared_cache_app:app", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "info", "--lifespan", "off"],
        cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stderr is not None
    for line in proc.stderr:  # uvicorn logs this line once the socket is listening
        if "Uvicorn running on" in line:
            return proc, port
    proc.wait(timeout=10)
    raise RuntimeError(f"uvicorn on {port} exited with {proc.returncode}")


async def test_identical_gets_across_two_processes_run_the_endpoint_once(prefix: str) -> None:
    """N concurrent identical GETs spread over two processes sharing Redis run the endpoint once."""
    servers = [start_server(prefix), start_server(prefix)]
    try:
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=2 * N)) as client:
            responses = await asyncio.gather(
                *(client.get(f"http://127.0.0.1:{servers[i % 2][1]}/report") for i in range(N))
            )
        runs = int(redis.Redis.from_url(REDIS_URL).get(prefix + "runs") or 0)
    finally:
        for proc, _ in servers:
            proc.terminate()
            proc.wait(timeout=10)
            assert proc.stderr is not None
            proc.stderr.close()
    assert [r.status_code for r in responses] == [200] * N
    assert runs == 1
    assert len({r.text for r in responses}) == 1  # everyone got the one run's answer
    assert {r.headers["x-cache"] for r in responses} == {"MISS"}  # all were concurrent misses
