"""Liveness, readiness with concurrent timed checks, and the Bearer token on every other endpoint."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

from fastapi import FastAPI
from starlette.testclient import TestClient

import perfkit
from perfkit.metrics import Collector
from perfkit.monitor import Check, CheckResult, MonitorConfig

from .conftest import AUTH, TOKEN, Env, EnvFactory


async def test_liveness_is_open(env: Env) -> None:
    """GET /perf/health answers 200 without any token."""
    response = await env.client.get("/perf/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


async def test_readiness_checks_everything_given(env: Env) -> None:
    """Readiness runs database, cache, jobs, disk, memory and CPU checks, each with status and latency."""
    response = await env.client.get("/perf/health/ready", headers=AUTH)
    assert response.status_code == 200, response.text
    checks = response.json()["checks"]
    assert {"database", "cache", "jobs", "disk", "memory", "cpu"} <= set(checks)
    for name in ("database", "cache", "jobs"):
        assert checks[name]["status"] == "pass", checks[name]
        assert checks[name]["latency_ms"] >= 0
        assert checks[name]["message"]
    assert checks["jobs"]["details"]["depth"] == {}


async def test_token_is_enforced(env: Env) -> None:
    """Everything but liveness needs the exact Bearer token: missing or wrong ones get 401."""
    for path in ("/perf/health/ready", "/perf/metrics", "/perf/report", "/perf/api/jobs", "/perf/live"):
        assert (await env.client.get(path)).status_code == 401, path
        wrong = {"authorization": f"Bearer {TOKEN}x"}
        assert (await env.client.get(path, headers=wrong)).status_code == 401, path
        assert (await env.client.get(path, headers={"authorization": TOKEN})).status_code == 401, path
    assert (await env.client.post("/perf/api/cache/clear")).status_code == 401
    response = await env.client.get("/perf/report", headers=AUTH)
    assert response.status_code == 200
    assert TOKEN not in response.text


async def test_no_token_configured_means_closed(make_env: EnvFactory) -> None:
    """Without a token and without open=True the endpoints refuse everyone (liveness aside)."""
    env = await make_env(token=None)
    assert (await env.client.get("/perf/report")).status_code == 401
    assert (await env.client.get("/perf/report", headers={"authorization": "Bearer "})).status_code == 401
    assert (await env.client.get("/perf/health")).status_code == 200


async def test_open_reads_still_protect_actions(make_env: EnvFactory) -> None:
    """open=True lets reads through without a token; cancel/retry/clear-cache still need it."""
    env = await make_env(open=True)
    assert (await env.client.get("/perf/report")).status_code == 200
    assert (await env.client.post("/perf/api/cache/clear")).status_code == 401
    response = await env.client.post("/perf/api/cache/clear", headers=AUTH)
    assert response.status_code == 200
    assert response.json()["namespace"] == "tickets"


async def test_failing_and_slow_checks_run_concurrently(make_env: EnvFactory) -> None:
    """A failing check gives 503; three slow checks time out together, not in turn."""

    async def slow() -> CheckResult:
        await asyncio.sleep(30)
        return CheckResult()

    async def broken() -> CheckResult:
        raise ConnectionError("refused")

    checks = [Check("slow1", slow), Check("slow2", slow), Check("slow3", slow), Check("broken", broken)]
    env = await make_env(checks=checks, check_timeout=0.5)
    start = time.monotonic()
    response = await env.client.get("/perf/health/ready", headers=AUTH)
    elapsed = time.monotonic() - start
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "fail"
    assert body["checks"]["slow1"]["message"] == "no answer within 0.5s"
    assert body["checks"]["broken"]["message"] == "ConnectionError: refused"
    assert elapsed < 1.2, f"checks ran one after another ({elapsed:.2f}s; in turn it would be 1.5s)"


async def test_non_critical_failure_only_warns(make_env: EnvFactory) -> None:
    """A non-critical check failing is reported as warn and readiness stays 200."""

    async def broken() -> CheckResult:
        raise RuntimeError("optional dependency down")

    env = await make_env(checks=[Check("optional", broken, critical=False)])
    response = await env.client.get("/perf/health/ready", headers=AUTH)
    assert response.status_code == 200
    assert response.json()["checks"]["optional"]["status"] == "warn"


def test_fastapi_custom_prefix() -> None:
    """On FastAPI the monitor mounts under a configured prefix and the app's own routes still work."""
    api = FastAPI()

    @api.get("/hello")
    async def hello() -> dict[str, str]:
        return {"hi": "there"}

    collector = Collector()
    perfkit.instrument(
        api, collector=collector, monitor=MonitorConfig(prefix="/_ops", token=TOKEN, url="memory://")
    )
    client = TestClient(api)
    assert client.get("/hello").json() == {"hi": "there"}
    assert client.get("/_ops/health").status_code == 200
    assert client.get("/_ops/report", headers=AUTH).json()["kpis"]["requests"]["requests"] == 1
    assert client.get("/perf/health").status_code == 404


def test_import_registers_nothing() -> None:
    """Importing perfkit and building a monitor leaves the default Prometheus registry untouched."""
    code = (
        "import prometheus_client\n"
        "before = set(prometheus_client.REGISTRY._names_to_collectors)\n"
        "import perfkit, perfkit.monitor, perfkit.monitor.prometheus\n"
        "from perfkit.monitor import Monitor, MonitorConfig\n"
        "m = Monitor(MonitorConfig(url='memory://'))\n"
        "m.exporter.registry\n"
        "assert set(prometheus_client.REGISTRY._names_to_collectors) == before\n"
        "print('clean')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert result.stdout.strip() == "clean", result.stderr
