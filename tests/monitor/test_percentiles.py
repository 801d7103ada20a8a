"""Percentiles interpolated inside histogram buckets stay within the smallest and largest value observed."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

import perfkit
from perfkit.metrics import Collector, merge
from perfkit.monitor import MonitorConfig, kpis
from perfkit.monitor.snapshots import add, diff

from .conftest import AUTH, TOKEN


def test_histogram_quantile_never_exceeds_the_maximum() -> None:
    """All values 2.744 s (bucket 2.5-5 s): p99 is 2.744 s, not the interpolated 4.975 s."""
    collector = Collector()
    hist = collector.histogram("t_seconds", ("route",))
    for _ in range(100):
        hist.observe(("/a",), 2.744)
    assert hist.quantile(0.99, ("/a",)) == 2.744
    assert hist.quantile(0.5) == 2.744
    hist.observe(("/b",), 0.3)  # bucket 0.25-0.5 s: p1 would interpolate below 0.3
    assert hist.quantile(0.01, ("/b",)) == 0.3
    assert hist.extremes == {("/a",): [2.744, 2.744], ("/b",): [0.3, 0.3]}


def test_extremes_survive_snapshots_merge_and_diff() -> None:
    """Processes' extremes merge as min/max, deltas keep them, and a snapshot without them caps nothing."""
    one, two = Collector(), Collector()
    one.histogram("t_seconds", ("route",)).observe(("/a",), 0.11)
    two.histogram("t_seconds", ("route",)).observe(("/a",), 0.13)
    merged = merge([one.snapshot(), two.snapshot()])
    assert merged["metrics"]["t_seconds"]["extremes"] == [[["/a"], [0.11, 0.13]]]
    before = one.snapshot()
    one.histogram("t_seconds", ("route",)).observe(("/a",), 0.12)
    delta = diff(one.snapshot(), before)
    assert delta["metrics"]["t_seconds"]["extremes"] == [[["/a"], [0.11, 0.12]]]
    legacy = two.snapshot()
    del legacy["metrics"]["t_seconds"]["extremes"]  # written by a release that did not track them
    assert add([legacy])["metrics"]["t_seconds"]["extremes"] == []
    assert add([one.snapshot(), legacy])["metrics"]["t_seconds"]["extremes"] == []
    assert add([legacy, one.snapshot()])["metrics"]["t_seconds"]["extremes"] == []


async def test_report_percentiles_do_not_exceed_what_clients_measured() -> None:
    """The report's p50/p95/p99 of a route are at most the slowest response a client timed."""

    async def slow(request: Request) -> Response:
        await asyncio.sleep(0.11)  # bucket 0.1-0.25 s: interpolation alone says p99 ~ 0.249 s
        return PlainTextResponse("ok")

    app: Any = perfkit.instrument(
        Starlette(routes=[Route("/slow", slow)]), collector=Collector(),
        monitor=MonitorConfig(token=TOKEN, url="memory://"),
    )  # fmt: skip
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        timed = []
        for _ in range(4):
            start = time.perf_counter()
            assert (await client.get("/slow")).status_code == 200
            timed.append((time.perf_counter() - start) * 1000)
        report = (await client.get("/perf/report", headers=AUTH)).json()
    await app.state.perfkit.close()
    route = report["routes"]["GET /slow"]
    for key in ("p50_ms", "p95_ms", "p99_ms"):
        assert 110 <= route[key] <= max(timed), (key, route[key], timed)
    assert report["kpis"]["requests"]["p99_ms"] <= max(timed)


def test_kpis_clamp_per_route_and_overall() -> None:
    """kpis.requests clamps each route to its own extremes and the overall figures to all of them."""
    collector = Collector()
    hist = collector.histogram(kpis.REQUESTS, ("method", "route", "status"))
    for value in (0.011, 0.012):
        hist.observe(("GET", "/fast", "2xx"), value)
    hist.observe(("GET", "/slow", "2xx"), 0.3)
    overall, routes = kpis.requests(collector.snapshot(), 60.0)
    assert routes["GET /fast"]["p99_ms"] == 12.0
    assert routes["GET /slow"]["p50_ms"] == 300.0
    assert overall["p99_ms"] == 300.0


def test_job_percentiles_are_clamped_too() -> None:
    """Job wait and run p95 stay within the observed range (one 0.3 s run is p95 0.3 s, not 0.4875 s)."""
    collector = Collector()
    collector.histogram("jobs_run_seconds", ("queue", "task")).observe(("email", "send"), 0.3)
    collector.histogram("jobs_wait_seconds", ("queue",)).observe(("email",), 0.03)
    queue = kpis.jobs(collector.snapshot())["queues"]["email"]
    assert queue["run_p95_ms"] == 300.0
    assert queue["wait_p95_ms"] == 30.0
