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
from .test_response_cache import redis_up

ROOT = Path(__file__).resolve().parents[2]
N = 40
HOST = {"host": "api.example"}

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
                # one Host for both, as behind a load balancer (the Host is part of the cache key)
                *(client.get(f"http://127.0.0.1:{servers[i % 2][1]}/report", headers=HOST) for i in range(N))
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


async def two_servers_get(prefix: str, path: str) -> tuple[list[httpx.Response], int]:
    """N concurrent GETs of `path`, alternating two tokens and two processes; (responses, endpoint runs)."""
    servers = [start_server(prefix), start_server(prefix)]
    tokens = ["Bearer admin-token", "Bearer alice-token"]
    try:
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=2 * N)) as client:
            responses = await asyncio.gather(
                *(
                    client.get(f"http://127.0.0.1:{servers[(i // 2) % 2][1]}{path}",
                               headers={**HOST, "authorization": tokens[i % 2]})
                    for i in range(N)
                )
            )  # fmt: skip
        runs = int(redis.Redis.from_url(REDIS_URL).get(prefix + "runs") or 0)
    finally:
        for proc, _ in servers:
            proc.terminate()
            proc.wait(timeout=10)
            assert proc.stderr is not None
            proc.stderr.close()
    return list(responses), runs


async def test_callers_with_different_tokens_not_coalesced_across_processes(prefix: str) -> None:
    """Under a rule with no per-user key, N concurrent GETs with two tokens over two processes are never
    coalesced (through the shared Redis lock) nor cached: every request runs the endpoint and gets its own
    caller's answer."""
    responses, runs = await two_servers_get(prefix, "/me-plain")
    assert [r.status_code for r in responses] == [200] * N
    assert [r.json()["user"] for r in responses] == ["Bearer admin-token", "Bearer alice-token"] * (N // 2)
    assert runs == N
    assert {r.headers["x-cache"] for r in responses} == {"BYPASS"}


async def test_per_token_key_coalesces_each_caller_apart_across_processes(prefix: str) -> None:
    """With `cache_vary=("authorization",)`, N concurrent misses with two tokens over two processes run the
    endpoint once per token, and each caller gets the answer made for its own token."""
    responses, runs = await two_servers_get(prefix, "/me")
    assert [r.status_code for r in responses] == [200] * N
    assert [r.json()["user"] for r in responses] == ["Bearer admin-token", "Bearer alice-token"] * (N // 2)
    assert runs == 2
