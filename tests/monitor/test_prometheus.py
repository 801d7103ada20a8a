"""/perf/metrics: Prometheus text exposition, parsed back, on a registry the app owns."""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter
from prometheus_client.parser import text_string_to_metric_families

from .conftest import AUTH, Env


def parse(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def sample(families: dict[str, Any], family: str, name: str, **labels: str) -> float:
    for s in families[family].samples:
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
            return float(s.value)
    raise AssertionError(f"no sample {name} {labels} in {family}")


async def test_requests_cache_db_and_system_are_exported(env: Env) -> None:
    """Request counts by route template, cache operations, SQL timings and system gauges parse back."""
    for _ in range(3):
        assert (await env.client.get("/cached?k=a")).status_code == 200
    await env.client.get("/tickets")
    response = await env.client.get("/perf/metrics", headers=AUTH)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    families = parse(response.text)
    requests = "perfkit_http_request_duration_seconds"
    assert sample(families, requests, requests + "_count", route="/cached", status="2xx") == 3
    assert sample(families, requests, requests + "_bucket", route="/cached", le="+Inf") == 3
    ops = "perfkit_cache_operations"
    assert sample(families, ops, ops + "_total", namespace="tickets", op="get", outcome="hit") == 2
    assert sample(families, ops, ops + "_total", namespace="tickets", op="get", outcome="miss") == 1
    db = "perfkit_db_query_duration_seconds"
    assert sample(families, db, db + "_count", operation="SELECT") >= 6
    assert 0 <= sample(families, "perfkit_system_cpu_percent", "perfkit_system_cpu_percent") <= 100 * 64
    assert 0 < sample(families, "perfkit_system_memory_percent", "perfkit_system_memory_percent") <= 100
    assert sample(families, "perfkit_monitor_processes", "perfkit_monitor_processes") == 1
    assert "perfkit_jobs_queue_depth" in families
    assert "perfkit_db_pool_checked_out" in families
    # the monitor's own endpoints are not application traffic
    assert all("/perf" not in s.labels.get("route", "") for s in families[requests].samples)


async def test_app_owns_the_registry(env: Env) -> None:
    """Metrics the app registers on the monitor's registry are exported next to perfkit's."""
    registry = env.monitor.exporter.registry
    orders = Counter("shop_orders", "Orders placed", registry=registry)
    orders.inc(4)
    families = parse((await env.client.get("/perf/metrics", headers=AUTH)).text)
    assert sample(families, "shop_orders", "shop_orders_total") == 4
