"""Zero loss within the history window across a Redis restart (with persistence), a server process
restart and client reconnects; a new epoch (resync) when Redis lost its data; health while it is down.

Each test runs a redis-server of its own on a free port (never restarting the shared one)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from perfkit.errors import BackendError
from perfkit.metrics import Collector
from perfkit.monitor import Monitor, MonitorConfig
from perfkit.realtime import Hub
from perfkit.realtime.client import Client, Message, Resync
from tests.conftest import eventually

from .conftest import OwnRedis, ProcessServer, Server, start_server
from .test_delivery import collect, subscribed

pytestmark = [pytest.mark.redis, pytest.mark.slow]


async def publish_when_up(hub: Hub, channel: str, values: list[Any]) -> None:
    """Publish each value, retrying while Redis is still starting (bounded)."""
    async with asyncio.timeout(15):
        for value in values:
            while True:
                try:
                    await hub.publish(channel, value)
                    break
                except BackendError:
                    await asyncio.sleep(0.05)


async def test_no_loss_across_a_redis_restart_with_persistence(
    own_redis: Callable[[bool], OwnRedis], servers: Callable[..., Server]
) -> None:
    """Redis (append-only file) restarts under a live connection: the messages published before, and
    right after it is back (before the hub's pub/sub link reconnects), all arrive, in order, once,
    under the same epoch and without a resync."""
    redis_server = own_redis(True)
    server = servers(redis_server.url, batch_window=0)
    publisher = Hub(redis_server.url)
    try:
        async with Client(f"{server.ws}?token=alice", channels=["room:r"]) as client:
            await subscribed(client, "room:r")
            await publish_when_up(publisher, "room:r", list(range(10)))
            before = await collect(client, 10)
            redis_server.stop()
            redis_server.start()
            await publish_when_up(
                publisher, "room:r", [*range(10, 30), "end"]
            )  # a duplicate comes before "end"
            after = await collect(client, 20, wait=15)
            (end,) = await collect(client, 1)
            extra = client.drain()
    finally:
        await publisher.close()
    events = before + after
    assert all(isinstance(e, Message) for e in events), events
    assert [e.data for e in events] == list(range(30))
    assert [e.offset for e in events] == list(range(1, 31))
    assert len({e.epoch for e in events}) == 1 and extra == []
    assert isinstance(end, Message) and end.data == "end"


async def test_redis_restart_without_persistence_is_a_resync(
    own_redis: Callable[[bool], OwnRedis], servers: Callable[..., Server]
) -> None:
    """When Redis comes back empty the channel starts a new epoch: the client gets one `resync` (reason
    epoch, the new epoch's current offset), then every later message of the new epoch, contiguous."""
    redis_server = own_redis(False)
    server = servers(redis_server.url, batch_window=0)
    publisher = Hub(redis_server.url)
    try:
        async with Client(f"{server.ws}?token=alice", channels=["room:e"]) as client:
            await subscribed(client, "room:e")
            await publish_when_up(publisher, "room:e", ["old"])
            (old,) = await collect(client, 1)
            redis_server.stop()
            redis_server.start()
            await publish_when_up(publisher, "room:e", ["new1", "new2"])
            resync = await client.next(15)
            await publisher.publish("room:e", "last")
            events: list[Any] = []
            while not events or events[-1].data != "last":
                events.append(await client.next(10))
    finally:
        await publisher.close()
    assert isinstance(resync, Resync) and resync.reason == "epoch" and resync.epoch != old.epoch
    assert all(isinstance(e, Message) and e.epoch == resync.epoch for e in events), events
    assert [e.offset for e in events] == list(range(resync.offset + 1, 4))


async def test_no_loss_across_a_server_process_restart(
    redis_url: str, process_servers: Callable[..., ProcessServer]
) -> None:
    """The server process is killed (SIGKILL) and started again on its port: the client reconnects by
    itself and resumes, getting what was published while it was down, in order, once."""
    server = process_servers(redis_url, batch_window=0)
    publisher = Hub(redis_url)
    try:
        async with Client(f"{server.ws}?token=alice", channels=["room:w"], backoff=(0.05, 0.5)) as client:
            await subscribed(client, "room:w")
            await publisher.publish("room:w", 0)
            first = await collect(client, 1)
            server.kill()
            for value in [*range(1, 20), "end"]:  # a duplicate would come before "end"
                await publisher.publish("room:w", value)
            again = start_server(redis_url, port=server.port, batch_window=0)
            try:
                rest = await collect(client, 19, wait=20)
                (end,) = await collect(client, 1)
                extra = client.drain()
            finally:
                again.stop()
        assert client.connects >= 2
    finally:
        await publisher.close()
    assert [e.data for e in first + rest] == list(range(20))
    assert [e.offset for e in first + rest] == list(range(1, 21)) and extra == []
    assert isinstance(end, Message) and end.data == "end"


async def test_health_fails_while_redis_is_down(
    own_redis: Callable[[bool], OwnRedis], servers: Callable[..., Server]
) -> None:
    """The hub's readiness check passes with Redis up, fails while it is down, passes once it is back;
    the app keeps serving meanwhile."""
    redis_server = own_redis(False)
    server = servers(redis_server.url, batch_window=0)
    async with (
        httpx.AsyncClient(timeout=10) as http,
        Client(f"{server.ws}?token=alice", channels=["h:1"]) as client,
    ):
        await subscribed(client, "h:1")

        async def status(expected: str) -> bool:
            return bool((await http.get(f"{server.http}/health")).json()["status"] == expected)

        assert await status("pass")
        redis_server.stop()
        await eventually(lambda: status("fail"), timeout=10, what="health fails", max_interval=0.1)
        redis_server.start()
        await eventually(lambda: status("pass"), timeout=15, what="health passes again", max_interval=0.1)


async def test_monitor_readiness_includes_the_hub(own_redis: Callable[[bool], OwnRedis]) -> None:
    """`MonitorConfig(checks=[hub.check()])`: /perf/health/ready reports the hub, and is not ready while
    its Redis is down."""
    redis_server = own_redis(False)
    hub = Hub(redis_server.url)
    monitor = Monitor(MonitorConfig(checks=[hub.check()], token="t"), collector=Collector())
    try:
        ready, body = await monitor.readiness()
        assert ready and body["checks"]["realtime"]["status"] == "pass", body
        redis_server.stop()
        ready, body = await monitor.readiness()
        assert not ready and body["checks"]["realtime"]["status"] == "fail", body
    finally:
        await hub.close()


async def test_client_reconnects_from_a_frozen_server(process_servers: Callable[..., ProcessServer]) -> None:
    """A server that stops sending without closing (SIGSTOP) is taken for dead after the client's
    silence limit; the client reconnects once the server runs again, and resumes without loss."""
    import os
    import signal

    server = process_servers("memory://", batch_window=0, heartbeat=0.1)
    async with Client(
        f"{server.ws}?token=alice", channels=["f:1"], silence=0.5, backoff=(0.05, 0.2)
    ) as client:
        await subscribed(client, "f:1")
        await server.publish("f:1", 1)
        await client.next(5)
        os.kill(server.proc.pid, signal.SIGSTOP)
        try:
            await eventually(
                lambda: _disconnected(client), timeout=5, what="the client gives up on the frozen server"
            )
        finally:
            os.kill(server.proc.pid, signal.SIGCONT)
        await eventually(lambda: _reconnected(client), timeout=10, what="the client is back")
        await server.publish("f:1", 2)
        event = await client.next(5)
    assert event.data == 2 and event.offset == 2


async def _disconnected(client: Client) -> bool:
    return not client.connected.is_set()


async def _reconnected(client: Client) -> bool:
    return client.connects >= 2 and client.connected.is_set()
