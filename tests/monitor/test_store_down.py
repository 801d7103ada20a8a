"""A monitor store that is down degrades the monitor to this process; the app keeps serving."""

from __future__ import annotations

import pytest

from .conftest import AUTH, EnvFactory


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("redis://127.0.0.1:1/0", id="redis"),
        pytest.param("redis+cluster://127.0.0.1:1", marks=pytest.mark.redis_cluster, id="redis-cluster"),
    ],
)
async def test_redis_store_down_degrades(make_env: EnvFactory, url: str) -> None:
    """With Redis unreachable, requests, /metrics, the report and readiness all still answer."""
    env = await make_env(url=url, publish_interval=0.05)
    await env.monitor.start()
    await env.monitor.publisher.flush()  # a failing write is swallowed, not raised
    for _ in range(3):
        assert (await env.client.get("/big")).status_code == 200
    metrics = await env.client.get("/perf/metrics", headers=AUTH)
    assert metrics.status_code == 200
    assert (
        'perfkit_http_request_duration_seconds_count{method="GET",route="/big",status="2xx"} 3.0'
        in metrics.text
    )
    report = await env.client.get("/perf/report", headers=AUTH)
    assert report.status_code == 200
    assert report.json()["routes"]["GET /big"]["requests"] == 3
    ready = await env.client.get("/perf/health/ready", headers=AUTH)
    assert ready.status_code == 200
    store = ready.json()["checks"]["monitor_store"]
    assert store["status"] == "warn"
    assert store["message"].startswith(f"BackendError: monitor store {url}")
