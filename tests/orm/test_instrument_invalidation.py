"""`perfkit.instrument(app, cache=..., engine=...)` wires ORM invalidation for that engine's sessions."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from sqlalchemy import create_engine, select
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import perfkit
from perfkit import Cache, ConfigurationError
from perfkit.cache.orm import CacheInvalidator
from perfkit.web import Rule, WebConfig
from tests.orm.models import Base, Organization, Ticket

WARNING = "no CacheInvalidator watches"


def _seed(engine: Any) -> None:
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        session.add(Organization(id=7, name="seven"))
        session.add_all([Ticket(id=1, organization_id=7, status="open"), Ticket(id=2, organization_id=7)])
        session.commit()


def make_app(engine: Any, cache: Cache, **options: Any) -> FastAPI:
    """A FastAPI app as users write one: a session per request from a dependency, a cached GET."""
    app = FastAPI()

    def get_session() -> Iterator[Session]:
        with Session(engine) as session:
            yield session

    @app.get("/tickets/{ticket_id}")
    def read_ticket(ticket_id: int, session: Session = Depends(get_session)) -> dict[str, str]:  # noqa: B008
        ticket = session.get(Ticket, ticket_id)
        assert ticket is not None
        return {"status": ticket.status}

    @app.put("/tickets/{ticket_id}")
    def close_ticket(ticket_id: int, session: Session = Depends(get_session)) -> dict[str, str]:  # noqa: B008
        ticket = session.get(Ticket, ticket_id)
        assert ticket is not None
        ticket.status = "closed"
        session.commit()
        return {"status": "closed"}

    rule = Rule(path="/tickets/{ticket_id}", cache_ttl=300, cache_depends_on=(Ticket.id == "{ticket_id}",))
    return perfkit.instrument(  # type: ignore[no-any-return]
        app, cache=cache, engine=engine, config=WebConfig(rules=[rule]), monitor=False, **options
    )


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Any]:
    eng = create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    _seed(eng)
    yield eng
    eng.dispose()


@pytest.fixture
async def cache() -> AsyncIterator[Cache]:
    c = Cache("memory://?max_size=1000", namespace=f"t{uuid.uuid4().hex[:12]}")
    yield c
    await c.close()


async def _client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t")


async def test_commit_evicts_cached_response_without_a_manual_invalidator(
    engine: Any, cache: Cache, caplog: pytest.LogCaptureFixture
) -> None:
    """A write committed through a plain Session(engine) makes the next read of the cached route fresh."""
    app = make_app(engine, cache)
    async with await _client(app) as c:
        first = await c.get("/tickets/1")
        assert (first.json(), first.headers["x-cache"]) == ({"status": "open"}, "MISS")
        assert (await c.get("/tickets/1")).headers["x-cache"] == "HIT"
        await c.get("/tickets/2")
        assert (await c.put("/tickets/1")).status_code == 200
        fresh = await c.get("/tickets/1")
        other = await c.get("/tickets/2")
    assert (fresh.json(), fresh.headers["x-cache"]) == ({"status": "closed"}, "MISS")
    assert other.headers["x-cache"] == "HIT"  # only the changed row's dependents go
    assert app.state.perfkit.invalidator is not None
    assert WARNING not in caplog.text
    await app.state.perfkit.close()


async def test_opt_out_serves_stale_and_warns_once(
    engine: Any, cache: Cache, caplog: pytest.LogCaptureFixture
) -> None:
    """orm_invalidation=False restores the old behaviour (stale after commit) and logs one warning."""
    app = make_app(engine, cache, orm_invalidation=False)
    with caplog.at_level(logging.WARNING, logger="perfkit.cache"):
        async with await _client(app) as c:
            await c.get("/tickets/1")
            await c.get("/tickets/2")
            await c.put("/tickets/1")
            stale = await c.get("/tickets/1")
    assert (stale.json(), stale.headers["x-cache"]) == ({"status": "open"}, "HIT")
    assert app.state.perfkit.invalidator is None
    warned = [r for r in caplog.records if WARNING in r.getMessage()]
    assert len(warned) == 1
    assert "dep:tickets" in warned[0].getMessage()


async def test_an_invalidator_of_your_own_is_kept_alone(engine: Any, cache: Cache) -> None:
    """When the cache already has an invalidator, instrument() adds none (its strategies stay in force)."""
    own = CacheInvalidator(cache)
    own.instrument(Session)
    try:
        app = make_app(engine, cache)
        assert app.state.perfkit.invalidator is None
    finally:
        own.close()
    assert not cache.invalidated_on_commit


async def test_sessions_of_other_engines_are_not_watched(engine: Any, cache: Cache, tmp_path: Path) -> None:
    """Only sessions bound to the instrumented engine report changes; another engine's commits do not."""
    app = make_app(engine, cache)
    other = create_engine(f"sqlite:///{tmp_path / 'other.db'}")
    _seed(other)
    async with await _client(app) as c:
        await c.get("/tickets/1")
        with Session(other) as session:
            ticket = session.get(Ticket, 1)
            assert ticket is not None
            ticket.status = "elsewhere"
            session.commit()
        again = await c.get("/tickets/1")
    assert again.headers["x-cache"] == "HIT"
    assert app.state.perfkit.invalidator.stats() == {}
    other.dispose()
    await app.state.perfkit.close()


async def test_close_removes_the_session_listeners(engine: Any, cache: Cache) -> None:
    """After the handle is closed, no listener of it is left on SQLAlchemy's Session class."""
    app = make_app(engine, cache)
    invalidator = app.state.perfkit.invalidator
    await app.state.perfkit.close()
    assert not cache.invalidated_on_commit
    with Session(engine) as session:
        ticket = session.get(Ticket, 1)
        assert ticket is not None
        ticket.status = "closed"
        session.commit()
    assert invalidator.stats() == {}


async def test_async_engine_sessions_and_cache_query(tmp_path: Path, cache: Cache) -> None:
    """With an AsyncEngine, AsyncSession commits evict what cache.query cached, with no manual wiring."""
    sync = create_engine(f"sqlite:///{tmp_path / 'a.db'}")
    _seed(sync)
    sync.dispose()
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}")
    handle = perfkit.instrument(FastAPI(), cache=cache, engine=engine, monitor=False).state.perfkit
    query = select(Ticket.id, Ticket.status).where(Ticket.id == 1)
    async with AsyncSession(engine) as session:
        assert await cache.query(session, query) == [{"id": 1, "status": "open"}]
    async with AsyncSession(engine) as session:
        ticket = await session.get(Ticket, 1)
        assert ticket is not None
        ticket.status = "closed"
        await session.commit()
    async with AsyncSession(engine) as session:
        assert await cache.query(session, query) == [{"id": 1, "status": "closed"}]
    await handle.close()
    await engine.dispose()


def test_orm_invalidation_must_be_a_bool(cache: Cache) -> None:
    """A non-bool orm_invalidation is refused by name."""
    with pytest.raises(ConfigurationError, match="orm_invalidation"):
        perfkit.instrument(FastAPI(), cache=cache, orm_invalidation="no", monitor=False)  # type: ignore[arg-type]


async def test_unwatched_depends_on_warns_once_and_watched_does_not(
    cache: Cache, caplog: pytest.LogCaptureFixture
) -> None:
    """`depends_on` values cached with no invalidator log one warning per cache; none once one watches."""

    @cache.cached(ttl=60, key="ticket:{ticket_id}", depends_on=[Ticket.id == "{ticket_id}"])
    async def ticket(ticket_id: int) -> int:
        return ticket_id

    with caplog.at_level(logging.WARNING, logger="perfkit.cache"):
        await ticket(1)
        await ticket(2)
        await cache.set("plain", 1, tags=["not-a-dependency"])
    assert sum(WARNING in r.getMessage() for r in caplog.records) == 1
    caplog.clear()
    watched = Cache("memory://", namespace=f"w{uuid.uuid4().hex[:8]}")
    invalidator = CacheInvalidator(watched)
    invalidator.instrument(Session)
    try:
        with caplog.at_level(logging.WARNING, logger="perfkit.cache"):
            await watched.set("k", 1, tags=["dep:tickets"])
        assert WARNING not in caplog.text
    finally:
        invalidator.close()
        await watched.close()


class _UnhashableBase(DeclarativeBase):
    pass


class Note(_UnhashableBase):
    """A model that compares by value and so has no hash, as SQLModel and pydantic-based models do."""

    __tablename__ = "unhashable_note"
    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Note) and (other.id, other.text) == (self.id, self.text)

    __hash__ = None  # type: ignore[assignment]


async def test_unhashable_models_commit_and_invalidate(tmp_path: Path, cache: Cache) -> None:
    """Inserting and updating models without __hash__ (SQLModel's) commits and evicts their dependents."""
    eng = create_engine(f"sqlite:///{tmp_path / 'notes.db'}")
    _UnhashableBase.metadata.create_all(eng)
    app = FastAPI()

    @app.get("/notes/{note_id}")
    def read_note(note_id: int) -> dict[str, str | None]:
        with Session(eng) as session:
            note = session.get(Note, note_id)
            return {"text": note.text if note else None}

    @app.post("/notes/{note_id}")
    def write_note(note_id: int, text: str) -> dict[str, str]:
        with Session(eng) as session:
            note = session.get(Note, note_id)
            if note is None:
                session.add(Note(id=note_id, text=text))
            else:
                note.text = text
            session.commit()
        return {"text": text}

    rule = Rule(path="/notes/{note_id}", cache_ttl=300, cache_depends_on=(Note.id == "{note_id}",))
    app = perfkit.instrument(app, cache=cache, engine=eng, config=WebConfig(rules=[rule]), monitor=False)
    async with await _client(app) as c:
        assert (await c.get("/notes/1")).json() == {"text": None}
        assert (await c.post("/notes/1", params={"text": "one"})).status_code == 200
        assert (await c.get("/notes/1")).json() == {"text": "one"}
        assert (await c.post("/notes/1", params={"text": "two"})).status_code == 200
        fresh = await c.get("/notes/1")
    assert (fresh.json(), fresh.headers["x-cache"]) == ({"text": "two"}, "MISS")
    await app.state.perfkit.close()
    eng.dispose()
