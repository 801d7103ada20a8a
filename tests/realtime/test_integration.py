"""The hub inside perfkit and inside an app: settings, job events, SQLAlchemy commits, the sync facade,
metrics, and Redis faults that degrade instead of crashing."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from perfkit.errors import (
    BackendUnavailableError,
    ConfigurationError,
    InvalidArgumentError,
    SerializationError,
)
from perfkit.jobs import Context, JobQueue
from perfkit.metrics import Collector
from perfkit.realtime import Hub, HubConfig
from perfkit.realtime.client import Client, RequestError
from perfkit.realtime.protocol import Position, encode_position, parse_position
from tests.conftest import eventually, free_port, pass_time

from .conftest import Server
from .test_delivery import subscribed


def test_settings_are_checked_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bad settings fail at construction with an error naming the setting; PERFKIT_REALTIME_* is read."""
    for bad, name in (({"history_size": 0}, "history_size"), ({"history_ttl": "-1s"}, "history_ttl"),
                      ({"slow_policy": "ignore"}, "slow_policy"), ({"rate_limit": "lots"}, "rate_limit"),
                      ({"latest": "status:*"}, "latest"), ({"histroy_size": 5}, "histroy_size")):  # fmt: skip
        with pytest.raises(ConfigurationError) as err:
            HubConfig.resolve(**bad)
        assert err.value.setting == name, err.value
    monkeypatch.setenv("PERFKIT_REALTIME_BATCH_WINDOW", "250ms")
    config = HubConfig.resolve(heartbeat=2)
    assert (config.batch_window, config.heartbeat, config.heartbeat_timeout) == (0.25, 2.0, 9.0)
    assert (config.history_size, config.history_ttl, config.queue_size) == (1500, 10.0, 2000)


def test_urls_are_checked() -> None:
    """An unknown scheme and a cluster URL with a bad node fail at construction, saying so."""
    with pytest.raises(ConfigurationError, match="accepted schemes"):
        Hub("kafka://127.0.0.1")
    with pytest.raises(ConfigurationError, match="is not host:port"):
        Hub("redis+cluster://127.0.0.1:7000,nowhere")


async def test_publish_checks_its_input() -> None:
    """A bad channel name or a value with no JSON form is refused before anything is stored."""
    hub = Hub("memory://", collector=Collector())
    with pytest.raises(InvalidArgumentError):
        await hub.publish("no spaces", 1)
    with pytest.raises(SerializationError):
        await hub.publish("ok:1", object())
    assert await hub.history("ok:1") == []
    await hub.close()


def test_sse_position_round_trip() -> None:
    """The SSE position encodes channel names with any allowed character and parses back; junk pairs are
    skipped, not errors."""
    positions = {"appointment:42": Position("9f3a51c2", 18), "a/b@c.d-e_f": Position("00", 0)}
    assert parse_position(encode_position(positions)) == positions
    assert parse_position("x=zz.1&bad&y=ab.-1&%20=ab.1&ok=ab.3") == {"ok": Position("ab", 3)}


async def test_history_bounded_by_count_and_age(redis_url: str) -> None:
    """Both brokers keep at most history_size messages, none older than history_ttl."""
    for url in ("memory://", redis_url):
        hub = Hub(url, collector=Collector(), history_size=5, history_ttl=0.4)
        try:
            for i in range(12):
                await hub.publish("h:1", i)
            assert await hub.history("h:1") == [7, 8, 9, 10, 11]
            await pass_time(0.6)  # the clock expires them
            await hub.publish("h:1", "fresh")
            assert await hub.history("h:1") == ["fresh"]
        finally:
            await hub.close()


async def test_job_events_published_per_job(tmp_path: Path) -> None:
    """`hub.follow_jobs(queue)` publishes each job's events on `job:<id>` in order: enqueued, started,
    progress (with its value), succeeded."""
    hub = Hub("memory://", collector=Collector())
    jobs = JobQueue(f"sqlite:///{tmp_path}/jobs.db")
    hub.follow_jobs(jobs)
    hub.follow_jobs(jobs)  # a second call adds nothing

    @jobs.task(queue="rt")
    async def export(ctx: Context) -> str:
        await ctx.progress(0.5)
        return "done"

    try:
        info = await export.enqueue()
        await jobs.worker(["rt"], burst=True, concurrency=1).run()
        await hub.drain()
        events = await hub.history(f"job:{info.id}")
    finally:
        await jobs.close()
        await hub.close()
    assert [e["event"] for e in events] == ["enqueued", "started", "progress", "succeeded"]
    assert events[2]["progress"] == 0.5 and all(e["job_id"] == info.id for e in events)


async def test_publish_on_commit_only_after_commit(tmp_path: Path) -> None:
    """`hub.publish_on_commit(session, ...)` publishes when the transaction commits, never on rollback."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

    hub = Hub("memory://", collector=Collector())
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/app.db")
    sessions = async_sessionmaker(engine)
    try:
        async with sessions() as session:
            await session.execute(text("CREATE TABLE t (x INTEGER)"))
            await session.execute(text("INSERT INTO t VALUES (1)"))
            hub.publish_on_commit(session, "rows:t", {"x": 1})
            await hub.drain()
            assert await hub.history("rows:t") == []  # not before the commit
            await session.commit()
            await session.execute(text("INSERT INTO t VALUES (2)"))
            hub.publish_on_commit(session, "rows:t", {"x": 2})
            await session.rollback()
            hub.publish_on_commit(session, "rows:t", {"x": 3})
            await session.rollback()  # nothing to roll back at the database: still drops {"x": 3}
            await session.commit()
        await hub.drain()
        assert await hub.history("rows:t") == [{"x": 1}]
    finally:
        await engine.dispose()
        await hub.close()


async def test_sync_publish_from_threads(redis_url: str) -> None:
    """`hub.sync.publish` works from a worker thread beside the running hub (it runs on the hub's loop)
    and from plain code with no loop at all (Redis: its own connection on the facade's loop)."""
    for url in ("memory://", redis_url):
        hub = Hub(url, collector=Collector())
        try:
            await hub.publish("s:1", "async")
            position = await asyncio.to_thread(hub.sync.publish, "s:1", "from a thread")
            assert position.offset == 2
            assert await hub.history("s:1") == ["async", "from a thread"]
            with pytest.raises(RuntimeError, match="own event loop"):
                hub.sync.publish("s:1", "on the loop")
        finally:
            await hub.close()
    fresh = Hub(redis_url, collector=Collector())
    result: list[Position] = []
    thread = threading.Thread(target=lambda: result.append(fresh.sync.publish("s:2", "no loop")))
    thread.start()
    thread.join(10)
    fresh.sync.close()
    reader = Hub(redis_url, collector=Collector())
    try:
        assert result and result[0].offset == 1 and await reader.history("s:2") == ["no loop"]
    finally:
        await reader.close()


async def test_metrics_reach_the_collector(servers: Callable[..., Server]) -> None:
    """After traffic the process's collector has connections, messages in and out, batch sizes and lag."""
    import httpx

    server = servers("memory://", batch_window=0.05)
    async with Client(f"{server.ws}?token=alice", channels=["m:1"]) as client:
        await subscribed(client, "m:1")
        await server.publish("m:1", *range(20))
        for _ in range(20):
            await client.next(5)
        async with httpx.AsyncClient() as http:
            found = (await http.get(f"{server.http}/metrics")).json()
    assert found["realtime_connections"]["ws"] == 1
    assert found["realtime_messages_out_total"][""] == 20 and found["realtime_published_total"][""] == 20
    assert found["realtime_messages_in_total"][""] >= 1
    assert 1 <= found["realtime_batch_size"]["count"] < 20
    frames = found["realtime_batch_size"]["count"]  # the lag is observed per frame (its oldest message)
    assert found["realtime_lag_seconds"]["count"] == frames and found["realtime_lag_seconds"]["p99"] < 1


async def test_redis_down_degrades(servers: Callable[..., Server]) -> None:
    """With Redis unreachable, publish raises BackendUnavailableError naming it, and a connection's
    subscribe gets `error` (unavailable) while the connection itself keeps working."""
    url = f"redis://127.0.0.1:{free_port()}/0"
    hub = Hub(url, collector=Collector())
    with pytest.raises(BackendUnavailableError, match="realtime Redis"):
        await hub.publish("d:1", 1)
    assert (await hub.health())["ok"] is False
    await hub.close()
    server = servers(url)
    async with Client(f"{server.ws}?token=alice", retries=0) as client:  # the refusal itself, at once
        with pytest.raises(RequestError) as err:
            await client.subscribe("d:1")
        assert err.value.code == "unavailable"
        with pytest.raises(RequestError) as refused:
            await client.subscribe("secret:1")
        assert refused.value.code == "forbidden"  # still answering


async def test_first_subscription_is_live_when_it_returns(redis_url: str) -> None:
    """A broker's first `subscribe` returns only once Redis confirms it: a message published right after
    reaches the process (it once returned before the pub/sub link was up, and such messages were lost)."""
    from perfkit.realtime.broker import create_broker

    broker = create_broker(redis_url, HubConfig.resolve())
    got: list[int] = []
    broker.bind(lambda channel, entry: got.append(entry.offset), lambda: None)
    try:
        await broker.subscribe("first:1")
        await broker.publish("first:1", "1")

        async def delivered() -> bool:
            return got == [1]

        await eventually(delivered, timeout=3, what="the message published right after subscribing")
        assert got == [1]
    finally:
        await broker.close()
