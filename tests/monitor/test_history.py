"""The monitor store on SQLite, Redis, Redis Cluster and memory; per-minute rollups, retention and
regression detection."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio.cluster import RedisCluster

from perfkit.metrics import Collector
from perfkit.monitor import history
from perfkit.monitor.publisher import Publisher
from perfkit.monitor.store import MonitorStore, registry

from ..conftest import REDIS_URL, require_redis

STORES = [
    pytest.param("memory", marks=pytest.mark.memory, id="memory"),
    pytest.param("sqlite", marks=pytest.mark.sqlite, id="sqlite"),
    pytest.param("redis", marks=pytest.mark.redis, id="redis"),
    pytest.param("redis-cluster", marks=pytest.mark.redis_cluster, id="redis-cluster"),
]
DAY = 86400.0
T = 1_800_000_000.0  # a fixed "now", minute-aligned


@pytest.fixture(params=STORES)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[MonitorStore]:
    """A monitor store of the requested kind, under a prefix of this test's own; dropped afterwards."""
    kind = request.param
    if kind == "redis":
        require_redis()
        url = f"{REDIS_URL}?prefix=pktest-mon-{uuid.uuid4().hex[:10]}:"
    elif kind == "redis-cluster":
        url = f"{request.getfixturevalue('redis_cluster_url')}?prefix=pktest-mon-{uuid.uuid4().hex[:10]}:"
    else:
        url = {"memory": "memory://", "sqlite": f"sqlite:///{tmp_path}/monitor.db"}[kind]
    made = registry.create(url, retention=7 * DAY)
    assert made.kind == kind, f"asked for {kind}, got {made.kind}"
    try:
        yield made
    finally:
        drop = getattr(made, "drop", None)
        if drop is not None:
            await drop()
        await made.close()


def requests(collector: Collector, n: int, seconds: float, status: str = "2xx") -> None:
    hist = collector.histogram("http_request_duration_seconds", ("method", "route", "status"))
    for _ in range(n):
        hist.observe(("GET", "/tickets", status), seconds)


async def test_store_contract(store: MonitorStore) -> None:
    """Snapshots per process, rollup rows per minute, small values and a single-holder lease."""
    await store.publish("a", T, {"metrics": {}, "findings": {}, "started": T}, int(T // 60), {"x": 1})
    await store.publish("b", T + 1, {"metrics": {}, "findings": {}, "started": T}, int(T // 60), {"x": 2})
    await store.publish(
        "a", T + 61, {"metrics": {}, "findings": {}, "started": T}, int(T // 60) + 1, {"x": 3}
    )
    assert sorted(p for p, _, _ in await store.snapshots()) == ["a", "b"]
    rows = await store.rollups(int(T // 60), int(T // 60) + 1)
    assert sorted(r["x"] for _, r in rows) == [1, 2, 3]
    assert [r["x"] for m, r in rows if m == int(T // 60) + 1] == [3]
    await store.put("deploy", {"version": "v1"})
    assert await store.get("deploy") == {"version": "v1"}
    assert await store.get("missing") is None
    assert await store.lead("alerts", "a", 30)
    assert not await store.lead("alerts", "b", 30)
    assert await store.lead("alerts", "a", 30)
    await store.prune(T + 60)
    assert [r["x"] for _, r in await store.rollups(0, int(T // 60) + 10)] == [3]
    assert [p for p, _, _ in await store.snapshots()] == ["a"]


async def test_per_minute_series(store: MonitorStore) -> None:
    """Each publish adds its delta to the process's row for that minute; the series has one point each."""
    collector = Collector()
    pub = Publisher(collector, store, interval=1, retention=7 * DAY)
    await pub.publish(now=T)
    requests(collector, 10, 0.02)
    await pub.publish(now=T + 10)
    requests(collector, 5, 0.02)
    await pub.publish(now=T + 20)  # same minute: 15 in all
    requests(collector, 30, 0.02, status="5xx")
    await pub.publish(now=T + 70)
    points = await history.series(store, T - 60, T + 120)
    assert [p["requests"] for p in points] == [15, 30]
    assert points[0]["t"] == T and points[0]["throughput_rps"] == 0.25
    assert points[1]["error_rate"] == 1.0


async def test_regression_against_previous_day(store: MonitorStore) -> None:
    """p95 five times yesterday's at the same hour is reported as a regression."""
    collector = Collector()
    pub = Publisher(collector, store, interval=1, retention=7 * DAY)
    await pub.publish(now=T - DAY - 1800)
    requests(collector, 100, 0.02)
    await pub.publish(now=T - DAY - 1200)
    await pub.publish(now=T - 1800)
    requests(collector, 100, 0.2)
    await pub.publish(now=T - 1200)
    result = await history.regressions(store, span=3600, now=T)
    assert result["baseline"] == "previous day"
    [regression] = result["regressions"]
    assert regression["kpi"] == "p95_ms"
    assert regression["now"] > 4 * regression["baseline"]
    assert regression["message"].startswith("p95 regressed")


async def test_regression_against_a_marked_deploy(store: MonitorStore) -> None:
    """After `mark_deploy`, the baseline is the span before the deploy: errors up after it are flagged."""
    collector = Collector()
    pub = Publisher(collector, store, interval=1, retention=7 * DAY)
    await pub.publish(now=T - 1800)
    requests(collector, 100, 0.02)
    await pub.publish(now=T - 1200)
    await history.mark_deploy(store, "v2", at=T - 600)
    requests(collector, 90, 0.02)
    requests(collector, 10, 0.02, status="5xx")
    await pub.publish(now=T - 300)
    result = await history.regressions(store, span=3600, now=T)
    assert result["baseline"] == "before deploy v2"
    assert [r["kpi"] for r in result["regressions"]] == ["error_rate"]


async def test_retention_is_bounded(store: MonitorStore) -> None:
    """Rollups older than the retention are pruned when the publisher writes."""
    collector = Collector()
    pub = Publisher(collector, store, interval=1, retention=3600)
    requests(collector, 3, 0.01)
    await pub.publish(now=T - 7200)
    pub._pruned = 0.0
    requests(collector, 3, 0.01)
    await pub.publish(now=T)
    minutes = [m for m, _ in await store.rollups(0, int(T // 60) + 1)]
    assert minutes == [int(T // 60)]


@pytest.mark.redis_cluster
async def test_cluster_store_keeps_its_keys_in_one_slot(
    redis_cluster_url: str, raw_cluster: RedisCluster
) -> None:
    """On a cluster every key of the store carries the prefix's hash tag: one slot, so its pipelines,
    deletes and lease script each go to one node; `drop` finds them all."""
    prefix = f"pktest-mon-{uuid.uuid4().hex[:10]}:"
    store = registry.create(f"{redis_cluster_url}?prefix={prefix}", retention=7 * DAY)
    tag = "{" + prefix[:-1] + "}:"
    try:
        for minute in range(int(T // 60), int(T // 60) + 5):  # five rollup keys
            await store.publish("a", minute * 60.0, {"metrics": {}}, minute, {"x": minute})
        await store.put("deploy", {"version": "v1"})
        assert await store.lead("alerts", "a", 30)
        await store.ping()
        keys = {key.decode() async for key in raw_cluster.scan_iter(match=f"*{prefix[:-1]}*")}
        assert {k.removeprefix(tag).split(":")[0] for k in keys} == {
            "snapshots", "rollup", "minutes", "kv", "lease"
        }  # fmt: skip
        assert len({raw_cluster.keyslot(k) for k in keys}) == 1
        await store.prune(T + 180)  # DEL of three rollup keys at once
        assert [m for m, _ in await store.rollups(0, int(T // 60) + 10)] == [
            int(T // 60) + 3,
            int(T // 60) + 4,
        ]
    finally:
        await store.drop()  # type: ignore[attr-defined]
        await store.close()
    assert [key async for key in raw_cluster.scan_iter(match=f"*{prefix[:-1]}*")] == []


@pytest.mark.parametrize(
    ("prefix", "tagged"),
    [("perfkit:monitor:", "{perfkit:monitor}:"), ("app", "{app}"), ("{app}:monitor:", "{app}:monitor:"),
     ("{}x:", "{{}x}:")],
)  # fmt: skip
def test_cluster_prefix_gets_a_hash_tag(prefix: str, tagged: str) -> None:
    """The cluster store wraps its prefix in a hash tag unless it holds a non-empty one already."""
    from perfkit.monitor.store.redis_cluster import hash_tagged

    assert hash_tagged(prefix) == tagged
