"""perfkit.loader's SQLAlchemy helpers on SQLite and PostgreSQL: one statement per batch level, checked with
perfkit's N+1 detector; the shared cache evicted by ORM writes (CacheInvalidator)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from perfkit.cache import Cache
from perfkit.cache.orm import CacheInvalidator
from perfkit.db import track
from perfkit.errors import InvalidArgumentError
from perfkit.loader import Loader, keyed_loader, relationship_loader, scope
from perfkit.metrics import Collector

from ..db.conftest import AsyncDb, SyncDb


async def test_relationship_loader_is_one_statement_per_level(async_db: AsyncDb) -> None:
    """Comments of every ticket, then every ticket's author: 1 + 1 + 1 statements, no N+1 finding."""
    m = async_db.models
    async with AsyncSession(async_db.engine) as session:
        with track("/loader") as stats:
            tickets = (await session.scalars(select(m.Ticket).order_by(m.Ticket.id))).all()
            comments = relationship_loader(session, m.Ticket.comments, collector=Collector())
            authors = relationship_loader(session, m.Ticket.author, collector=Collector())
            by_ticket = await asyncio.gather(*(comments.load(t) for t in tickets))  # DataLoader style
            writers = await authors.load_many(tickets)
            assert stats.db_count == 3
            assert [[c.body for c in cs] for cs in by_ticket] == [["c0", "c1"]] * 6
            assert [a.id for a in writers] == [t.author_id for t in tickets]
            assert sum(len(t.comments) for t in tickets) == 12  # filled in: reading them runs no query
            assert stats.db_count == 3
    assert async_db.collector.findings("n_plus_one") == []


async def test_the_lazy_version_is_what_the_detector_flags(async_db: AsyncDb) -> None:
    """The same reads done lazily are 1 + N statements and an N+1 finding (so the test above can fail)."""
    m = async_db.models
    async with AsyncSession(async_db.engine) as session:
        with track("/lazy") as stats:
            tickets = (await session.scalars(select(m.Ticket))).all()
            for t in tickets:
                await t.awaitable_attrs.comments
    assert stats.db_count == 7
    [finding] = async_db.collector.findings("n_plus_one")
    assert finding["relationship"] == "Ticket.comments"


def test_sync_session_and_keyed_lookup(sync_db: SyncDb) -> None:
    """Sync Session: keyed_loader by id (None when absent) and by a column (many=True), one query each."""
    m = sync_db.models

    async def main() -> None:
        with Session(sync_db.engine) as session, track() as stats:
            authors = keyed_loader(session, m.Author.id, collector=Collector())
            found = await authors.load_many([3, 1, 999, 3])
            assert [a.name if a else None for a in found] == ["author 2", "author 0", None, "author 2"]
            by_ticket = keyed_loader(session, m.Comment.ticket_id, many=True, collector=Collector())
            lists = await by_ticket.load_many([1, 2, 77])
            assert [len(x) for x in lists] == [2, 2, 0]
            assert stats.db_count == 2
        assert sync_db.collector.findings("n_plus_one") == []

    asyncio.run(main())


def test_helpers_refuse_what_they_cannot_batch(sync_db: SyncDb) -> None:
    """A column where a relationship is due, and a relationship where a column is, are named errors."""
    m = sync_db.models
    with Session(sync_db.engine) as session:
        with pytest.raises(InvalidArgumentError, match="relationship attribute"):
            relationship_loader(session, m.Ticket.status)
        with pytest.raises(InvalidArgumentError, match="mapped column"):
            keyed_loader(session, m.Ticket.comments)


async def test_shared_cache_is_evicted_by_orm_writes(async_db: AsyncDb, namespace: str) -> None:
    """A shared, cross-request loader cache with depends_on: a commit adding a comment to ticket 1 evicts
    ticket 1 only, and the next request sees the new comment."""
    m = async_db.models
    sessions = async_sessionmaker(async_db.engine, expire_on_commit=False)
    cache = Cache("memory://", namespace=namespace)
    invalidator = CacheInvalidator(cache)
    invalidator.instrument(sessions)
    queries: list[list[Any]] = []

    async def bodies(ticket_ids: list[int]) -> list[list[str]]:
        queries.append(list(ticket_ids))
        async with sessions() as s:
            rows = (await s.execute(select(m.Comment.ticket_id, m.Comment.body).order_by(m.Comment.id))).all()
        return [[b for t, b in rows if t == k] for k in ticket_ids]

    loader = Loader(
        bodies,
        cache=cache,
        ttl=60,
        depends_on=[m.Comment.ticket_id == "{key}"],
        name="bodies",
        collector=Collector(),
    )
    try:

        async def request() -> list[list[str]]:
            with scope():
                return await loader.load_many([1, 2])

        assert await request() == [["c0", "c1"], ["c0", "c1"]]
        assert await request() == [["c0", "c1"], ["c0", "c1"]]
        assert queries == [[1, 2]]  # the second request was served from the shared cache
        async with sessions() as s:
            s.add(m.Comment(id=999, ticket_id=1, body="new"))
            await s.commit()
        assert await request() == [["c0", "c1", "new"], ["c0", "c1"]]
        assert queries == [[1, 2], [1]]  # only ticket 1 was evicted
    finally:
        invalidator.close()
        await cache.close()
