"""The cache on a real Redis Cluster: key layout, spreading, paged invalidation, SCAN on every node, L1
coherence per primary, and a node going down."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from perfkit import Cache
from perfkit.cache.backends.redis_keys import namespace_prefix
from tests._cluster import LocalCluster, cli
from tests.conftest import eventually, free_port, one_per_primary

pytestmark = pytest.mark.redis_cluster


def spread_namespaces(client: RedisCluster, base: str) -> dict[str, str]:
    """One namespace per primary: {node name: namespace}, found by hashing candidate names."""
    return one_per_primary(client, namespace_prefix, base)


async def test_every_key_of_a_namespace_is_in_one_slot(
    redis_cluster_url: str, raw_cluster: RedisCluster
) -> None:
    """Values, tag index, tag version and stampede lock of one namespace all hash to the same slot."""
    ns = f"t{uuid.uuid4().hex[:12]}"
    seen: list[bytes] = []

    async def loader() -> str:  # runs while the stampede lock is held
        seen.extend([key async for key in raw_cluster.scan_iter(match=f"*{ns}*")])
        return "v"

    async with Cache(redis_cluster_url, namespace=ns) as cache:
        await cache.set("a", 1, tags=["t"])
        await cache.invalidate_tags(["t"])  # leaves a tag version behind
        await cache.set("b", 2, tags=["t"])
        assert await cache.get_or_set("c", loader, tags=["t"]) == "v"
        kinds = {key.split(b"{")[0] for key in seen}
        assert kinds == {b"", b"perfkit:tag:", b"perfkit:ktags:", b"perfkit:tagv:", b"perfkit:lock:"}, seen
        assert len({raw_cluster.keyslot(key) for key in seen}) == 1
        await cache.clear()
    assert [key async for key in raw_cluster.scan_iter(match=f"*{ns}*")] == []


async def test_namespaces_spread_over_the_primaries(
    redis_cluster_url: str, raw_cluster: RedisCluster
) -> None:
    """Different namespaces land on different nodes, and each node holds its namespace's keys."""
    spread = spread_namespaces(raw_cluster, f"t{uuid.uuid4().hex[:10]}")
    assert len(spread) == len(raw_cluster.get_primaries()) >= 2
    for node_name, ns in spread.items():
        async with Cache(redis_cluster_url, namespace=ns) as cache:
            await cache.set("k", node_name)
            host, _, port = node_name.rpartition(":")
            async with Redis(host=host, port=int(port)) as node:  # that node alone (MOVED if not its slot)
                assert await node.exists(namespace_prefix(ns) + "k") == 1
            assert await cache.get("k") == node_name
            await cache.clear()


async def test_invalidating_thousands_of_keys_works_in_pages(
    redis_cluster_url: str, raw_cluster: RedisCluster
) -> None:
    """A tag on 2,500 keys (three pages) is invalidated completely, index and all."""
    ns = f"t{uuid.uuid4().hex[:12]}"
    async with Cache(redis_cluster_url, namespace=ns) as cache:
        await cache.set_many({f"k{i}": i for i in range(2500)}, tags=["big"])
        assert await cache.get("k2499") == 2499
        assert await cache.invalidate_tags(["big"]) == 2500
        assert await cache.get("k0", "gone") == "gone"
        assert await raw_cluster.exists(f"perfkit:tag:{namespace_prefix(ns)}big") == 0
        left = [key async for key in raw_cluster.scan_iter(match=f"{namespace_prefix(ns)}*")]
        assert left == []
        await cache.clear()


async def test_delete_match_scans_every_primary(redis_cluster_url: str, raw_cluster: RedisCluster) -> None:
    """The backend's SCAN-based deletion finds keys on every node, not only the one it asked first."""
    base = f"t{uuid.uuid4().hex[:10]}"
    spread = spread_namespaces(raw_cluster, base)
    caches = [Cache(redis_cluster_url, namespace=ns) for ns in spread.values()]
    try:
        for cache in caches:
            await cache.set_many({f"x{i}": i for i in range(30)})
        backend = caches[0].tiers.l2
        assert backend is not None
        assert await backend.delete_match("{" + base + "-*") == 30 * len(caches)
        assert [key async for key in raw_cluster.scan_iter(match="{" + base + "*")] == []
        assert await caches[0].delete_match("x*") == 0
    finally:
        for cache in caches:
            await cache.close()


async def test_l1_hears_writes_on_every_primary(redis_cluster_url: str, raw_cluster: RedisCluster) -> None:
    """A tiered cache on the cluster drops its L1 copy when another client writes, whichever node."""
    for ns in spread_namespaces(raw_cluster, f"t{uuid.uuid4().hex[:10]}").values():
        async with (
            Cache(redis_cluster_url, l1="memory://", namespace=ns) as reader,
            Cache(redis_cluster_url, namespace=ns) as writer,
        ):
            await writer.set("k", "old")
            assert await reader.get("k") == "old"
            coherence = reader.tiers.coherence
            assert coherence is not None
            await eventually(lambda c=coherence: _ready(c), what="tracking subscribed")  # type: ignore[misc]
            assert await reader.get("k") == "old"  # now from L1
            await writer.set("k", "new")
            await eventually(lambda r=reader: _is(r, "k", "new"), what="L1 invalidated")  # type: ignore[misc]
            assert await reader.get("k") == "new"
            await writer.clear()


async def _ready(coherence: object) -> bool:
    return bool(coherence.ready)  # type: ignore[attr-defined]


async def _is(cache: Cache, key: str, value: object) -> bool:
    return await cache.get(key) == value


async def test_unreachable_cluster_degrades_with_one_log_line(caplog: pytest.LogCaptureFixture) -> None:
    """No node answering: misses, silent sets, the loader runs, one warning, no exception."""
    caplog.set_level(logging.WARNING, "perfkit.cache")
    url = f"redis+cluster://127.0.0.1:{free_port()}"
    async with Cache(url, timeout=0.2, namespace="down") as cache:
        for _ in range(10):
            assert await cache.get("k", "default") == "default"
            await cache.set("k", 1, tags=["t"])
        assert await cache.get_or_set("k", lambda: "loaded") == "loaded"
        assert await cache.invalidate_tags(["t"]) == 0
    async with Cache(url, l1="memory://", timeout=0.2, namespace="down") as tiered:
        assert await tiered.get_or_set("k", lambda: "loaded") == "loaded"
    assert len([r for r in caplog.records if "unavailable" in r.getMessage()]) == 2  # one per cache


@pytest.mark.slow
async def test_a_node_going_down_degrades_with_one_log_line(
    private_cluster: LocalCluster, caplog: pytest.LogCaptureFixture
) -> None:
    """When the node holding a namespace dies, its cache answers misses and logs the outage once."""
    caplog.set_level(logging.WARNING, "perfkit.cache")
    client = RedisCluster(host="127.0.0.1", port=private_cluster.ports[0])
    await client.initialize()
    spread = spread_namespaces(client, "down")
    await client.aclose()
    victim = private_cluster.ports[-1]
    ns = spread[f"127.0.0.1:{victim}"]
    async with Cache(private_cluster.url, timeout=0.3, namespace=ns) as cache:
        await cache.set("k", "v")
        assert await cache.get("k") == "v"
        private_cluster.kill_node(private_cluster.ports.index(victim))
        for _ in range(10):
            assert await cache.get("k", "default") == "default"
            await cache.set("k", 1)
        assert await cache.get_or_set("k2", lambda: "loaded") == "loaded"
    outage = [r for r in caplog.records if "unavailable" in r.getMessage()]
    assert len(outage) == 1, [r.getMessage() for r in caplog.records]

    async def no_connection_left() -> bool:  # only redis-cli's own: close() closed every socket
        alive = [p for p in private_cluster.ports if p != victim]
        return all(len(cli(p, "CLIENT", "LIST").strip().splitlines()) == 1 for p in alive)

    await eventually(no_connection_left, what="the surviving nodes' connections closed")


@pytest.mark.slow
async def test_l1_follows_a_primary_added_later(private_cluster: LocalCluster, tmp_path: Path) -> None:
    """A primary that joins after the L1 subscribed, and takes the namespace's slot, is tracked too."""
    ns = f"t{uuid.uuid4().hex[:12]}"
    slot = int(cli(private_cluster.ports[0], "CLUSTER", "KEYSLOT", namespace_prefix(ns)).strip())
    async with (
        Cache(private_cluster.url, l1="memory://", namespace=ns) as reader,
        Cache(private_cluster.url, namespace=ns) as writer,
    ):
        tracker = reader.tiers.coherence
        assert tracker is not None
        tracker.topology_interval = 0.05  # type: ignore[attr-defined]
        assert await reader.get("k", "none") == "none"
        await eventually(lambda: _ready(tracker), what="tracking subscribed")
        assert len(tracker.followed) == 3  # type: ignore[attr-defined]

        port = private_cluster.add_node(tmp_path)
        cli(private_cluster.ports[0], "CLUSTER", "MEET", "127.0.0.1", str(port))

        async def four() -> bool:
            return len(tracker.followed) == 4 and tracker.ready  # type: ignore[attr-defined]

        await eventually(four, timeout=10.0, what="the new primary tracked")
        new_id = cli(port, "CLUSTER", "MYID").strip()

        async def everyone_knows_it() -> bool:
            return all(new_id in cli(p, "CLUSTER", "NODES") for p in private_cluster.ports)

        await eventually(everyone_knows_it, timeout=10.0, what="the new node known to all")
        cli(port, "CLUSTER", "BUMPEPOCH")
        for p in [port, *private_cluster.ports]:  # the slot is empty: reassign it everywhere
            assert cli(p, "CLUSTER", "SETSLOT", str(slot), "NODE", new_id).strip() == "OK"

        async def all_ok() -> bool:
            return all(
                "cluster_state:ok" in cli(p, "CLUSTER", "INFO") for p in [port, *private_cluster.ports]
            )

        await eventually(all_ok, timeout=10.0, what="cluster_state:ok on every node")

        await writer.set("k", "old")
        async with Redis(port=port) as node:
            assert await node.exists(namespace_prefix(ns) + "k") == 1  # it is the new node's now
        assert await reader.get("k") == "old"
        await eventually(lambda: _in_l1(reader, "k"), what="L1 filled")
        await writer.set("k", "new")
        await eventually(lambda: _is(reader, "k", "new"), what="L1 invalidated by the new node")
        await writer.clear()


async def _in_l1(cache: Cache, key: str) -> bool:
    assert cache.tiers.l1 is not None
    return cache.tiers.l1.lookup(cache.tiers.key(key)) is not None
