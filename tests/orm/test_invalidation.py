"""Invalidation driven by SQLAlchemy writes: table-, row- and column-scoped, after commit only."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from perfkit import InvalidArgumentError
from perfkit.cache.orm import CacheInvalidator
from tests.conftest import eventually
from tests.orm.conftest import DB
from tests.orm.models import Ticket, TicketComment, User


class Counted:
    """A cached function over the database that counts how often it really ran."""

    def __init__(self) -> None:
        self.calls = 0


def org_open_count(db: DB, counter: Counted) -> Any:
    @db.cache.cached(ttl=300, key="org:{org_id}:open", depends_on=[Ticket.organization_id == "{org_id}"])
    async def open_tickets(org_id: int) -> int:
        counter.calls += 1
        return int(
            await db.run(
                lambda s: s.scalar(
                    select(func.count()).where(Ticket.organization_id == org_id, Ticket.status == "open")
                ),
                commit=False,
            )
        )

    return open_tickets


async def test_table_dependency(db: DB) -> None:
    """A value depending on a whole table is recomputed after any committed write to it."""
    counter = Counted()

    @db.cache.cached(ttl=300, key="tickets:count", depends_on=[Ticket])
    async def count() -> int:
        counter.calls += 1
        return int(await db.run(lambda s: s.scalar(select(func.count()).select_from(Ticket)), commit=False))

    assert await count() == 3
    assert await count() == 3
    await db.run(lambda s: s.add(Ticket(id=10, organization_id=8, title="new")))
    assert await count() == 4
    assert counter.calls == 2


async def test_column_scoped_dependency(db: DB) -> None:
    """Org 7's value survives a change in org 8, and is invalidated by a change in org 7."""
    counter = Counted()
    open_tickets = org_open_count(db, counter)
    assert await open_tickets(7) == 2
    assert await open_tickets(8) == 1

    def close_ticket(ticket_id: int) -> Any:
        return lambda s: setattr(s.get(Ticket, ticket_id), "status", "closed")

    await db.run(close_ticket(3))  # org 8
    assert await open_tickets(7) == 2
    assert counter.calls == 2  # org 7 still cached
    assert await open_tickets(8) == 0
    await db.run(close_ticket(1))  # org 7
    assert await open_tickets(7) == 1
    assert counter.calls == 4


async def test_moving_a_row_invalidates_old_and_new_values(db: DB) -> None:
    """Updating organization_id 7 -> 8 invalidates both organizations' values."""
    counter = Counted()
    open_tickets = org_open_count(db, counter)
    await open_tickets(7)
    await open_tickets(8)
    await db.run(lambda s: setattr(s.get(Ticket, 1), "organization_id", 8))
    assert await open_tickets(7) == 1
    assert await open_tickets(8) == 2
    assert counter.calls == 4


async def test_insert_and_delete(db: DB) -> None:
    """Inserting and deleting rows of org 7 invalidate org 7's value."""
    counter = Counted()
    open_tickets = org_open_count(db, counter)
    assert await open_tickets(7) == 2
    await db.run(lambda s: s.add(Ticket(id=11, organization_id=7, title="x")))
    assert await open_tickets(7) == 3
    await db.run(lambda s: s.delete(s.get(Ticket, 11)))
    assert await open_tickets(7) == 2


async def test_nothing_is_invalidated_before_commit_or_on_rollback(db: DB) -> None:
    """Flushed but uncommitted changes, and rolled-back ones, invalidate nothing."""
    counter = Counted()
    open_tickets = org_open_count(db, counter)
    await open_tickets(7)

    def change_flush_and_check(s: Session) -> None:
        s.get(Ticket, 1).status = "closed"  # type: ignore[union-attr]
        s.flush()

    await db.run(change_flush_and_check, commit=False)  # the session closes: rollback
    assert await db.cache.exists("org:7:open")
    assert await open_tickets(7) == 2
    assert counter.calls == 1


async def test_savepoints(db: DB) -> None:
    """A rolled-back savepoint drops its changes; a released one counts at the outer commit."""
    counter = Counted()
    open_tickets = org_open_count(db, counter)
    await open_tickets(7)
    await open_tickets(8)

    def work(s: Session) -> None:
        nested = s.begin_nested()
        s.get(Ticket, 1).status = "closed"  # type: ignore[union-attr]  # org 7, rolled back
        s.flush()
        nested.rollback()
        with s.begin_nested():
            s.get(Ticket, 3).status = "closed"  # type: ignore[union-attr]  # org 8, released

    await db.run(work)
    assert await db.cache.exists("org:7:open")
    assert not await db.cache.exists("org:8:open")
    assert await open_tickets(8) == 0


async def test_relationship_map_reaches_parent_rows(db: DB) -> None:
    """With register(Ticket, related=[TicketComment]), a comment invalidates its ticket's dependents,
    including values scoped by the ticket's organization, and not other tickets'."""
    db.invalidator.register(Ticket, related=[TicketComment], strategy="immediate")
    detail_calls: list[int] = []

    @db.cache.cached(ttl=300, key="ticket:{ticket_id}", depends_on=[Ticket.id == "{ticket_id}"])
    async def ticket_detail(ticket_id: int) -> int:
        detail_calls.append(ticket_id)
        return ticket_id

    counter = Counted()
    open_tickets = org_open_count(db, counter)
    await ticket_detail(1)
    await ticket_detail(3)
    await open_tickets(7)
    await open_tickets(8)
    await db.run(lambda s: s.add(TicketComment(ticket_id=1, body="hi")))
    await ticket_detail(1)
    await ticket_detail(3)
    assert detail_calls == [1, 3, 1]
    assert not await db.cache.exists("org:7:open")  # ticket 1 belongs to org 7
    assert await db.cache.exists("org:8:open")


async def test_bulk_update_and_delete(db: DB) -> None:
    """ORM bulk update()/delete() invalidate exactly the organizations they touch."""
    counter = Counted()
    open_tickets = org_open_count(db, counter)
    await open_tickets(7)
    await open_tickets(8)
    await db.run(
        lambda s: s.execute(update(Ticket).where(Ticket.organization_id == 7).values(status="closed"))
    )
    assert not await db.cache.exists("org:7:open")
    assert await db.cache.exists("org:8:open")
    assert await open_tickets(7) == 0
    await db.run(lambda s: s.execute(delete(Ticket).where(Ticket.title == "c")))  # org 8, not in the WHERE
    assert not await db.cache.exists("org:8:open")
    assert await db.cache.exists("org:7:open")


async def test_bulk_update_moving_rows_invalidates_the_target(db: DB) -> None:
    """A bulk update that sets organization_id invalidates the new organization's values too."""
    counter = Counted()
    open_tickets = org_open_count(db, counter)
    await open_tickets(7)
    await open_tickets(8)
    await db.run(lambda s: s.execute(update(Ticket).where(Ticket.id == 3).values(organization_id=7)))
    assert not await db.cache.exists("org:7:open")
    assert not await db.cache.exists("org:8:open")


async def test_core_dml_on_the_engine_is_table_wide(db: DB) -> None:
    """Core DML run on a watched engine invalidates every dependent of the table (documented)."""
    counter = Counted()
    open_tickets = org_open_count(db, counter)
    await open_tickets(7)
    stmt = update(Ticket.__table__).where(Ticket.__table__.c.id == 3).values(title="core")  # type: ignore[arg-type]
    if db.mode == "sync":
        with db.engine.begin() as conn:
            conn.execute(stmt)
    else:
        async with db.engine.begin() as conn:
            await conn.execute(stmt)
    await eventually(lambda: _gone(db, "org:7:open"), timeout=2, what="table-wide invalidation")
    assert not await db.cache.exists("org:7:open")


async def test_delayed_strategy_coalesces(db: DB) -> None:
    """'delayed' applies several commits' invalidations once, after the delay."""
    invalidator = CacheInvalidator(db.cache, delay=0.3)  # a window wide enough for three commits
    invalidator.instrument(db.factory)
    invalidator.register(User, related=[Ticket], strategy="delayed")

    @db.cache.cached(ttl=300, key="user:{user_id}", depends_on=[User.id == "{user_id}"])
    async def user(user_id: int) -> int:
        return user_id

    await user(1)
    for title in ("x", "y", "z"):
        await db.run(
            lambda s, title=title: (
                setattr(s.get(Ticket, 1), "assignee_id", 1) or setattr(s.get(Ticket, 1), "title", title)
            )
        )
    assert await db.cache.exists("user:1")  # not yet: coalescing
    await eventually(lambda: _gone(db, "user:1"), timeout=3, what="delayed invalidation")
    await eventually(lambda: _true("User" in invalidator.stats()), timeout=3, what="recorded stats")
    assert invalidator.stats()["User"]["delayed"]["invalidations"] == 1
    invalidator.close()


async def test_batch_strategy(db: DB) -> None:
    """'batch' collects invalidations and applies them at the interval."""
    db.invalidator.register(Ticket, strategy="batch")
    counter = Counted()
    open_tickets = org_open_count(db, counter)
    await open_tickets(7)
    await db.run(lambda s: setattr(s.get(Ticket, 1), "status", "closed"))
    await db.run(lambda s: setattr(s.get(Ticket, 2), "status", "closed"))
    await eventually(lambda: _gone(db, "org:7:open"), timeout=2, what="batched invalidation")
    await eventually(lambda: _true("Ticket" in db.invalidator.stats()), timeout=3, what="recorded stats")
    assert db.invalidator.stats()["Ticket"]["batch"]["keys_removed"] >= 1


async def test_stale_set_race_with_a_real_commit(db: DB) -> None:
    """A reader that read before a writer's commit does not store its stale result."""
    read_done, writer_done = asyncio.Event(), asyncio.Event()

    @db.cache.cached(ttl=300, key="org:{org_id}:titles", depends_on=[Ticket.organization_id == "{org_id}"])
    async def titles(org_id: int) -> list[str]:
        rows = await db.run(
            lambda s: list(
                s.scalars(select(Ticket.title).where(Ticket.organization_id == org_id).order_by(Ticket.id))
            ),
            commit=False,
        )
        read_done.set()
        await writer_done.wait()  # the writer commits while we hold pre-commit data
        return rows  # type: ignore[no-any-return]

    reader = asyncio.ensure_future(titles(7))
    await read_done.wait()
    await db.run(lambda s: setattr(s.get(Ticket, 1), "title", "renamed"))
    writer_done.set()
    assert await reader == ["a", "b"]  # the reader's own answer, computed before the commit
    assert not await db.cache.exists("org:7:titles")  # but it was not cached
    writer_done.set()
    read_done.clear()
    assert await titles(7) == ["renamed", "b"]


async def test_cache_query_infers_dependencies(db: DB) -> None:
    """cache.query caches a select, keyed by its SQL, invalidated by writes to the rows it reads."""
    stmt = select(Ticket).where(Ticket.organization_id == 7).order_by(Ticket.id)

    async def query(session: Any) -> list[dict[str, Any]]:
        return await db.cache.query(session, stmt, ttl=300)

    first = await db.session_call(query)
    assert [r["id"] for r in first] == [1, 2]
    assert first[0]["title"] == "a"
    assert db.cache.stats().hits == 0
    await db.session_call(query)
    assert db.cache.stats().hits == 1
    await db.run(lambda s: setattr(s.get(Ticket, 3), "title", "org 8 change"))
    await db.session_call(query)
    assert db.cache.stats().hits == 2  # org 8 change: still cached
    await db.run(lambda s: setattr(s.get(Ticket, 2), "title", "changed"))
    assert [r["title"] for r in await db.session_call(query)] == ["a", "changed"]


def test_bad_dependency_and_strategy_are_refused() -> None:
    """depends_on items and strategies are checked when declared."""
    from perfkit import Cache, ConfigurationError

    cache = Cache("memory://")
    with pytest.raises(InvalidArgumentError, match="depends_on"):
        cache.cached(depends_on=[Ticket.status > "a"])(lambda: 1)
    with pytest.raises(ConfigurationError, match="strategy"):
        CacheInvalidator(cache).register(Ticket, strategy="eventually")


async def _true(value: bool) -> bool:
    return value


async def _gone(db: DB, key: str) -> bool:
    return not await db.cache.exists(key)


@pytest.mark.redis
@pytest.mark.sqlite
async def test_invalidation_reaches_the_shared_l2(tmp_path: Any, namespace: str) -> None:
    """With a tiered Redis cache, a commit here removes the value from Redis, so every process misses."""
    from sqlalchemy import create_engine
    from sqlalchemy.orm import sessionmaker

    from perfkit import Cache
    from tests.conftest import REDIS_URL, require_redis
    from tests.orm.conftest import _seed
    from tests.orm.models import Base

    require_redis()
    engine = create_engine(f"sqlite:///{tmp_path}/app.db")
    Base.metadata.create_all(engine)
    with Session(engine) as s:
        _seed(s)
    here = Cache(REDIS_URL, l1="memory://", namespace=namespace)
    elsewhere = Cache(REDIS_URL, namespace=namespace)  # another process's view of the shared L2
    invalidator = CacheInvalidator(here)
    factory = sessionmaker(engine)
    invalidator.instrument(factory)
    try:
        await here.set("org:7", "cached", tags=["dep:tickets.organization_id=7"])
        assert await elsewhere.get("org:7") == "cached"
        with factory() as session:
            session.get(Ticket, 1).status = "closed"  # type: ignore[union-attr]
            session.commit()
        assert await elsewhere.get("org:7") is None
        assert await here.get("org:7") is None
    finally:
        invalidator.close()
        await here.clear()
        await here.close()
        await elsewhere.close()
        here.sync.close()
        engine.dispose()
