"""The hub on a real Redis Cluster (`redis+cluster://`): history keys in one slot per channel, sharded
pub/sub on the owning primary, one subscription per channel per process across uvicorn processes, and
no loss across a primary's failover to its replica or a resync after a node restart without its data."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio.cluster import RedisCluster

from perfkit.errors import ConfigurationError
from perfkit.realtime import Hub
from perfkit.realtime.client import Client, Message, Resync
from tests._cluster import LocalCluster, cli, start_cluster
from tests.conftest import eventually

from .conftest import ProcessServer
from .test_delivery import collect, subscribed
from .test_resilience import publish_when_up

pytestmark = [pytest.mark.redis_cluster, pytest.mark.slow]


@pytest.fixture
def cluster_prefix() -> str:
    return f"t-rtc-{uuid.uuid4().hex[:8]}:"


def _port_of(client: RedisCluster, key: str) -> int:
    return int(client.nodes_manager.get_node_from_slot(client.keyslot(key)).port)


async def test_channels_live_in_one_slot_and_fan_out_across_processes(
    redis_cluster_url: str,
    raw_cluster: RedisCluster,
    cluster_prefix: str,
    process_servers: Callable[..., ProcessServer],
) -> None:
    """Two uvicorn processes on the cluster: a message published from a third process reaches the
    clients of both, each process holds one sharded subscription per channel (on the primary that owns
    the channel's slot), whatever its number of clients, and a channel's list and meta hash share a slot."""
    url = f"{redis_cluster_url}?prefix={cluster_prefix}"
    servers = [process_servers(url, batch_window=0) for _ in range(2)]
    channels = [f"room:{i}" for i in range(6)]  # spread over the three primaries
    publisher = Hub(url)
    clients = [Client(f"{s.ws}?token=u{i}", channels=channels) for s in servers for i in range(2)]
    try:
        for client in clients:
            await client.start()
            await subscribed(client, *channels)
        for channel in channels:
            await publisher.publish(channel, {"on": channel})
        for client in clients:
            events = await collect(client, len(channels))
            assert sorted(e.data["on"] for e in events) == sorted(channels)
            assert all(isinstance(e, Message) and e.offset == 1 for e in events)
        for channel in channels:
            topic = f"{cluster_prefix}{{{channel}}}"
            meta, history = f"{topic}:meta", f"{topic}:h"
            assert raw_cluster.keyslot(meta) == raw_cluster.keyslot(history) == raw_cluster.keyslot(topic)
            owner = _port_of(raw_cluster, topic)
            reply = cli(owner, "PUBSUB", "SHARDNUMSUB", topic).split()
            assert reply == [topic, "2"], (channel, reply)  # two processes, one subscription each
        ports = {_port_of(raw_cluster, f"{cluster_prefix}{{{c}}}") for c in channels}
        assert len(ports) > 1  # the test spans several shards
        for server in servers:
            stats = await server.stats()
            assert stats["subscribers"] == {c: 2 for c in channels}
    finally:
        for client in clients:
            await client.close()
        await publisher.close()
        keys = [k async for k in raw_cluster.scan_iter(match=f"{cluster_prefix}*")]
        for key in keys:
            await raw_cluster.delete(key)


def test_cluster_url_may_list_its_nodes_in_the_authority() -> None:
    """`redis+cluster://h1:p1,h2:p2` is the first node plus `?nodes=h2:p2`; a bad item is named."""
    from perfkit.realtime.config import broker_url

    resolved = broker_url("redis+cluster://:pw@10.0.0.1:7000,10.0.0.2:7001?prefix=x:")
    assert resolved == "redis+cluster://:pw@10.0.0.1:7000?prefix=x:&nodes=10.0.0.2:7001"
    assert broker_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    with pytest.raises(ConfigurationError, match=r"'10\.0\.0\.2' is not host:port") as caught:
        Hub("redis+cluster://:pw@10.0.0.1:7000,10.0.0.2")
    assert "pw" not in str(caught.value)


async def _owner(cluster: LocalCluster, topic: str) -> int:
    client = RedisCluster(host="127.0.0.1", port=cluster.ports[0])
    try:
        await client.initialize()
        return cluster.ports.index(_port_of(client, topic))
    finally:
        await client.aclose()


async def test_no_loss_across_a_primary_failover(tmp_path: Path, process_servers: Any) -> None:
    """The primary that owns a channel dies (SIGKILL) and its replica takes over: the hub is unhealthy
    until then; the server's pub/sub link moves to the new primary and fills the gap from the
    (replicated) history: every message published before and after the failover arrives once, in
    order, under the same epoch."""
    cluster = start_cluster(tmp_path, replicas=1)
    publisher = Hub(cluster.url)
    try:
        server = process_servers(cluster.url, batch_window=0)
        async with Client(f"{server.ws}?token=alice", channels=["room:f"], backoff=(0.05, 0.5)) as client:
            await subscribed(client, "room:f")
            await publish_when_up(publisher, "room:f", list(range(10)))
            before = await collect(client, 10)
            index = await _owner(cluster, "perfkit:rt:{room:f}")
            assert "1" in cli(cluster.ports[index], "WAIT", "1", "2000")  # the replica has the history
            cluster.kill_node(index)
            assert not (await publisher.health())["ok"]  # every primary is pinged, the dead one too
            await publish_when_up(publisher, "room:f", list(range(10, 20)))
            await eventually(lambda: _healthy(publisher), timeout=10, what="healthy after the failover")
            after = await collect(client, 10, wait=20)
            await publisher.publish("room:f", "end")
            tail = await client.next(10)
    finally:
        await publisher.close()
        cluster.stop()
    events = [*before, *after]
    assert all(isinstance(e, Message) for e in events), events
    assert [e.data for e in events] == list(range(20)) and tail.data == "end"
    assert [e.offset for e in events] == list(range(1, 21)) and tail.offset == 21
    assert len({e.epoch for e in [*events, tail]}) == 1


async def test_node_restart_without_its_data_is_a_resync(
    private_cluster: LocalCluster, tmp_path: Path, process_servers: Any
) -> None:
    """The primary of a channel restarts empty (no persistence, no replica): the server's link
    reconnects to it, and the client gets one `resync` (a new epoch), then the new epoch's later
    messages, contiguous."""
    cluster = private_cluster
    publisher = Hub(cluster.url)
    try:
        server = process_servers(cluster.url, batch_window=0)
        async with Client(f"{server.ws}?token=alice", channels=["room:r"]) as client:
            await subscribed(client, "room:r")
            await publish_when_up(publisher, "room:r", ["old"])
            (old,) = await collect(client, 1)
            index = await _owner(cluster, "perfkit:rt:{room:r}")
            cluster.restart_node(index, tmp_path)
            await eventually(
                lambda: _cluster_ok(cluster), timeout=15, what="the cluster is ok again", max_interval=0.1
            )
            await publish_when_up(publisher, "room:r", ["new"])
            resync = await client.next(15)
            await publisher.publish("room:r", "last")
            events: list[Any] = []
            while not events or events[-1].data != "last":
                events.append(await client.next(10))
    finally:
        await publisher.close()
    assert isinstance(resync, Resync) and resync.reason == "epoch" and resync.epoch != old.epoch
    assert all(isinstance(e, Message) and e.epoch == resync.epoch for e in events), events
    assert [e.offset for e in events] == list(range(resync.offset + 1, 3))


async def _healthy(hub: Hub) -> bool:
    return bool((await hub.health())["ok"])


async def _cluster_ok(cluster: LocalCluster) -> bool:
    infos = await asyncio.gather(*(asyncio.to_thread(cli, p, "CLUSTER", "INFO") for p in cluster.ports))
    return all("cluster_state:ok" in info for info in infos)
