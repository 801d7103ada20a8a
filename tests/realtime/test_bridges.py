"""The cache invalidator's observer seam and `hub.follow_invalidations`: rows of a model changed ->
the model's channel notified, after commit only, on SQLite and the real PostgreSQL, with a hub on the
real Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text, update
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, sessionmaker

from perfkit import Cache
from perfkit.cache.orm import CacheInvalidator, RowsChanged
from perfkit.errors import ConfigurationError
from perfkit.metrics import Collector
from perfkit.realtime import Hub
from perfkit.realtime.client import Client, Message
from tests.conftest import POSTGRES_URL, eventually, require_postgres
from tests.orm.models import Base, Organization, Ticket

from .conftest import Server
from .test_delivery import subscribed


class World:
    """A database with two organizations and two tickets, a memory cache, an invalidator watching the
    sessions and the engine, and a hub on the real Redis following the invalidator."""

    def __init__(self, mode: str, engine: Any, factory: Any, invalidator: CacheInvalidator, hub: Hub):
        self.mode, self.engine, self.factory, self.invalidator, self.hub = (
            mode,
            engine,
            factory,
            invalidator,
            hub,
        )

    async def write(self, fn: Callable[[Session], Any], commit: bool = True) -> None:
        if self.mode == "sync":
            with self.factory() as session:
                fn(session)
                session.commit() if commit else session.rollback()
            return
        async with self.factory() as session:
            await session.run_sync(fn)
            await (session.commit() if commit else session.rollback())

    async def published(self, channel: str = "model:Ticket") -> list[Any]:
        await self.hub.drain()
        return await self.hub.history(channel)


@pytest.fixture(
    params=[
        pytest.param("sqlite-sync", marks=pytest.mark.sqlite, id="sqlite-sync"),
        pytest.param("sqlite-async", marks=pytest.mark.sqlite, id="sqlite-async"),
        pytest.param("postgres-sync", marks=pytest.mark.postgres, id="postgres-sync"),
        pytest.param("postgres-async", marks=pytest.mark.postgres, id="postgres-async"),
    ]
)
async def world(request: pytest.FixtureRequest, tmp_path: Path, redis_url: str) -> AsyncIterator[World]:
    kind, mode = request.param.split("-")
    schema, options = None, {}
    if kind == "sqlite":
        sync_url, async_url = f"sqlite:///{tmp_path}/app.db", f"sqlite+aiosqlite:///{tmp_path}/app.db"
    else:
        require_postgres()
        schema = f"t_{uuid.uuid4().hex[:10]}"
        base = POSTGRES_URL.split("://", 1)[1]
        sync_url, async_url = f"postgresql+psycopg://{base}", f"postgresql+asyncpg://{base}"
        options = {"execution_options": {"schema_translate_map": {None: schema}}}
    setup = create_engine(sync_url, **options)
    with setup.begin() as conn:
        if schema:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        Base.metadata.create_all(conn)
    with Session(setup) as session:
        session.add_all([Organization(id=7, name="seven"), Organization(id=8, name="eight")])
        session.add_all([Ticket(id=1, organization_id=7, title="a"), Ticket(id=2, organization_id=7)])
        session.commit()
    engine: Any = setup if mode == "sync" else create_async_engine(async_url, **options)
    factory: Any = (sessionmaker if mode == "sync" else async_sessionmaker)(engine, expire_on_commit=False)
    cache = Cache("memory://", namespace=f"t{uuid.uuid4().hex[:8]}")
    invalidator = CacheInvalidator(cache, delay=0.05, batch_interval=0.1)
    invalidator.instrument(factory)
    invalidator.instrument(engine)
    hub = Hub(redis_url, collector=Collector(), batch_window=0)
    hub.follow_invalidations(invalidator)
    yield World(mode, engine, factory, invalidator, hub)
    invalidator.close()
    await hub.close()
    await cache.close()
    if mode == "async":
        await engine.dispose()
    with setup.begin() as conn:
        if schema:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    setup.dispose()


def _retitle(session: Session) -> None:
    ticket = session.get(Ticket, 1)
    assert ticket is not None
    ticket.title, ticket.organization_id = "moved", 8


async def test_commit_publishes_the_changed_rows(world: World) -> None:
    """A committed change to ticket 1 (moved from org 7 to 8) is published once on model:Ticket with
    its key, both organization ids and its (NULL) assignee; nothing is published while it is only flushed."""

    def flush_only(session: Session) -> None:
        _retitle(session)
        session.flush()

    await world.write(flush_only, commit=False)
    assert await world.published() == []
    await world.write(_retitle)
    assert await world.published() == [
        {"model": "Ticket", "unknown": [],
         "rows": {"tickets": {"assignee_id": [None], "id": ["1"], "organization_id": ["7", "8"]}}}
    ]  # fmt: skip


async def test_rollbacks_publish_nothing(world: World) -> None:
    """A rolled-back transaction publishes nothing; a rolled-back savepoint drops only its own rows."""

    def outer_and_savepoint(session: Session) -> None:
        session.add(Ticket(id=3, organization_id=8, title="kept"))
        session.flush()
        savepoint = session.begin_nested()
        ticket = session.get(Ticket, 2)
        assert ticket is not None
        ticket.title = "undone"
        session.flush()
        savepoint.rollback()

    await world.write(_retitle, commit=False)
    await world.write(outer_and_savepoint)
    assert await world.published() == [
        {
            "model": "Ticket",
            "unknown": [],
            "rows": {"tickets": {"assignee_id": [None], "id": ["3"], "organization_id": ["8"]}},
        }
    ]


async def test_core_dml_notified_after_its_commit(world: World) -> None:
    """Core DML names no rows: the table's channel gets `unknown: [tickets]`, only after the commit
    (the engine's commit event fires before the database commits, so the news waits `delay`)."""
    statement = update(Ticket.__table__).values(status="closed")
    if world.mode == "sync":
        with world.engine.connect() as conn:
            conn.execute(statement)
            await asyncio.sleep(0.15)  # 3 x delay: a notice due before the commit would be here by now
            assert await world.published("model:tickets") == []
            conn.commit()
    else:
        async with world.engine.connect() as aconn:
            await aconn.execute(statement)
            await asyncio.sleep(0.15)
            assert await world.published("model:tickets") == []
            await aconn.commit()

    async def arrived() -> bool:
        return bool(await world.published("model:tickets"))

    await eventually(arrived, what="the Core write's notice")
    assert await world.published("model:tickets") == [
        {"model": "tickets", "rows": {}, "unknown": ["tickets"]}
    ]


async def test_delayed_strategy_notifies_after_invalidating(world: World) -> None:
    """For a model with the delayed strategy, observers hear of a change only once its cached
    dependents are gone (a page reloading on the news never reads the old value)."""
    world.invalidator.register(Ticket, strategy="delayed")
    cache = world.invalidator.caches[0]
    await cache.set("t1", "old", tags=["dep:tickets.id=1"])
    seen: list[Any] = []
    world.invalidator.on_change(lambda change: seen.append(cache.sync.get("t1", "gone")))
    await world.write(_retitle)
    assert seen == [] and await cache.get("t1") == "old"  # committed; the invalidation is 50 ms away

    async def notified() -> bool:
        return bool(seen)

    await eventually(notified, what="the delayed notice")
    assert seen == ["gone"]
    assert [m["model"] for m in await world.published()] == ["Ticket"]


async def test_a_failing_observer_breaks_nothing(world: World, caplog: pytest.LogCaptureFixture) -> None:
    """An observer that raises is logged; the commit succeeds, the other observers and the hub still
    hear of it; a removed observer hears nothing more."""
    heard: list[RowsChanged] = []

    def broken(change: RowsChanged) -> None:
        raise RuntimeError("observer bug")

    world.invalidator.on_change(broken)
    remove = world.invalidator.on_change(heard.append)
    await world.write(_retitle)
    assert [c.model for c in heard] == ["Ticket"] and "observer bug" in caplog.text
    assert heard[0].tables == ["tickets"] and heard[0].unknown == []
    remove()
    await world.write(lambda s: s.add(Ticket(id=4, organization_id=7)))
    assert len(heard) == 1
    assert len(await world.published()) == 2


async def test_follow_invalidations_checks_and_filters(world: World) -> None:
    """A channel without {model}, an invalid channel or an object with no on_change is refused by
    name; a second call adds nothing; `models=` limits what is published."""
    hub = world.hub
    with pytest.raises(ConfigurationError) as err:
        hub.follow_invalidations(world.invalidator, channel="models")
    assert err.value.setting == "channel"
    with pytest.raises(ConfigurationError, match="invalidator"):
        hub.follow_invalidations(object())
    with pytest.raises(Exception, match="channel"):
        hub.follow_invalidations(world.invalidator, channel="bad channel {model}")
    hub.follow_invalidations(world.invalidator)  # already followed: no second message per change
    hub.follow_invalidations(world.invalidator, channel="orgs:{model}", models=["Organization"])
    await world.write(_retitle)

    def rename(session: Session) -> None:
        org = session.get(Organization, 7)
        assert org is not None
        org.name = "renamed"

    await world.write(rename)
    assert [m["model"] for m in await world.published()] == ["Ticket"]
    assert await world.published("orgs:Ticket") == []
    assert [m["rows"] for m in await world.published("orgs:Organization")] == [
        {"organizations": {"id": ["7"]}}
    ]


@pytest.mark.parametrize("world", ["sqlite-sync"], indirect=True)
async def test_a_browser_connection_hears_the_commit(world: World, servers: Callable[..., Server]) -> None:
    """Across processes: a WebSocket client of a uvicorn server on the same Redis receives the
    model:Ticket message of a commit made in this process, and only after the commit."""
    server = servers(world.hub.url, batch_window=0)
    async with Client(f"{server.ws}?token=alice", channels=["model:Ticket"]) as client:
        await subscribed(client, "model:Ticket")
        await world.write(_retitle, commit=False)
        await world.write(lambda s: s.add(Ticket(id=5, organization_id=8)))
        event = await client.next(10)
        assert isinstance(event, Message) and event.data["rows"]["tickets"]["id"] == ["5"]
        assert event.offset == 1
