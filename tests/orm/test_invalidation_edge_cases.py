"""ORM invalidation edge cases: savepoints, unloaded columns, core DML, self-joins, inheritance."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from perfkit import Cache
from tests.orm.conftest import DB
from tests.orm.models import Employee, Manager, Ticket, TicketComment
from tests.orm.test_invalidation import Counted, org_open_count


async def test_failed_flush_in_a_savepoint_keeps_the_outer_changes(db: DB) -> None:
    """'Insert, or skip if it exists' in a savepoint does not throw away the outer changes."""
    open_tickets = org_open_count(db, Counted())
    await open_tickets(7)

    def work(s: Session) -> None:
        s.add(Ticket(id=10, organization_id=7, title="new"))
        s.flush()
        try:
            with s.begin_nested():
                s.add(Ticket(id=1, organization_id=7, title="duplicate id"))
                s.flush()
        except IntegrityError:
            pass

    await db.run(work)
    assert not await db.cache.exists("org:7:open")
    assert await open_tickets(7) == 3


async def test_changing_an_unloaded_column_invalidates_its_old_value(db: DB) -> None:
    """Setting an expired organization_id (old value unknown) still reaches the old organization."""
    open_tickets = org_open_count(db, Counted())
    await open_tickets(7)

    def move(s: Session) -> None:
        ticket = s.get(Ticket, 1)
        assert ticket is not None
        s.expire(ticket, ["organization_id"])
        ticket.organization_id = 8

    await db.run(move)
    assert not await db.cache.exists("org:7:open")


async def test_moving_a_child_with_an_unloaded_foreign_key_reaches_the_old_parent(db: DB) -> None:
    """A comment moved to another ticket, its old ticket_id not loaded, invalidates the old ticket."""
    db.invalidator.register(Ticket, related=[TicketComment])
    await db.run(lambda s: s.add(TicketComment(id=50, ticket_id=1, body="x")))

    @db.cache.cached(ttl=300, key="ticket:{ticket_id}", depends_on=[Ticket.id == "{ticket_id}"])
    async def detail(ticket_id: int) -> int:
        return ticket_id

    await detail(1)

    def move(s: Session) -> None:
        comment = s.get(TicketComment, 50)
        assert comment is not None
        s.expire(comment, ["ticket_id"])
        comment.ticket_id = 2

    await db.run(move)
    assert not await db.cache.exists("ticket:1")


async def test_core_dml_is_still_seen_after_a_failed_flush(db: DB) -> None:
    """A flush that fails does not leave the connection marked as 'inside the ORM' for ever."""
    if db.mode == "async":
        pytest.skip("the pooled-connection flag is the same code path; Core DML is driven sync here")
    open_tickets = org_open_count(db, Counted())

    def fail(s: Session) -> None:
        s.add(Ticket(id=1, organization_id=7, title="duplicate id"))
        s.flush()

    with pytest.raises(IntegrityError):
        await db.run(fail)
    await open_tickets(7)
    with db.engine.begin() as conn:
        conn.execute(update(Ticket.__table__).where(Ticket.__table__.c.id == 1).values(status="closed"))
    assert not await db.cache.exists("org:7:open")


async def test_cache_query_does_not_cache_uncommitted_rows(db: DB) -> None:
    """A query run in a session with pending writes is answered but not cached."""
    stmt = select(Ticket.id).where(Ticket.organization_id == 7).order_by(Ticket.id)

    async def with_pending_insert(session: Any) -> list[dict[str, Any]]:
        session.add(Ticket(id=99, organization_id=7, title="never committed"))
        rows: list[dict[str, Any]] = await db.cache.query(session, stmt)
        return rows

    assert [r["id"] for r in await db.session_call(with_pending_insert)] == [1, 2, 99]  # rolled back at close

    async def clean(session: Any) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = await db.cache.query(session, stmt)
        return rows

    assert [r["id"] for r in await db.session_call(clean)] == [1, 2]


async def test_bulk_update_with_execution_parameters(db: DB) -> None:
    """Bulk UPDATEs whose new values or WHERE come from execution parameters invalidate correctly."""
    open_tickets = org_open_count(db, Counted())
    await open_tickets(7)
    await open_tickets(8)
    await db.run(lambda s: s.execute(update(Ticket).where(Ticket.id == 1), {"organization_id": 8}))
    assert not await db.cache.exists("org:8:open")  # the new value, given as a parameter
    await open_tickets(7)
    stmt = update(Ticket).where(Ticket.organization_id == bindparam("org")).values(status="pending")
    await db.run(lambda s: s.execute(stmt, {"org": 7}))  # must not fail when instrumented
    assert not await db.cache.exists("org:7:open")


async def test_query_over_a_self_join_depends_on_both_sides(db: DB) -> None:
    """A query pinned to org 7 that joins other tickets by alias is invalidated by those tickets too."""
    other = aliased(Ticket)
    stmt = (
        select(Ticket.id, other.title.label("other_title"))
        .join(other, other.id == Ticket.id + 2)
        .where(Ticket.organization_id == 7)
        .order_by(Ticket.id)
    )

    async def query(session: Any) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = await db.cache.query(session, stmt, ttl=300)
        return rows

    assert await db.session_call(query) == [{"id": 1, "other_title": "c"}]
    await db.run(lambda s: setattr(s.get(Ticket, 3), "title", "renamed"))  # ticket 3 is in org 8
    assert await db.session_call(query) == [{"id": 1, "other_title": "renamed"}]


async def test_joined_inheritance_base_table_changes_invalidate(db: DB) -> None:
    """Changing a Manager's name (a column of the base `employees` table) invalidates
    depends_on=[Employee], not only the dependents of the subclass's own table."""
    await db.run(lambda s: s.add(Manager(id=1, name="m", level=1)))

    @db.cache.cached(ttl=300, key="names", depends_on=[Employee])
    async def names() -> list[str]:
        return list(await db.run(lambda s: list(s.scalars(select(Employee.name))), commit=False))

    assert await names() == ["m"]
    await db.run(lambda s: setattr(s.get(Manager, 1), "name", "renamed"))
    assert await names() == ["renamed"]


@pytest.mark.sqlite
def test_delayed_invalidations_are_applied_at_exit(tmp_path: Path) -> None:
    """A process that exits inside a delayed window still applies its invalidations."""
    db = tmp_path / "app.db"
    cache_db = tmp_path / "cache.db"
    script = f"""
import asyncio
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker
from perfkit import Cache
from perfkit.cache.orm import CacheInvalidator
from tests.orm.models import Base, Organization, Ticket
engine = create_engine("sqlite:///{db}")
Base.metadata.create_all(engine)
with Session(engine) as s:
    s.add(Organization(id=7, name="x")); s.add(Ticket(id=1, organization_id=7)); s.commit()
cache = Cache("sqlite:///{cache_db}", namespace="exit")
asyncio.run(cache.set("org:7", "old", tags=["dep:tickets.organization_id=7"]))
inv = CacheInvalidator(cache, delay=30)
inv.register(Ticket, strategy="delayed")
factory = sessionmaker(engine)
inv.instrument(factory)
with factory() as s:
    s.get(Ticket, 1).status = "closed"
    s.commit()
"""
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60, cwd=Path(__file__).parents[2])

    async def read() -> object:
        async with Cache(f"sqlite:///{cache_db}", namespace="exit") as cache:
            return await cache.get("org:7")

    import asyncio

    assert asyncio.run(read()) is None


async def test_core_dml_on_an_autocommit_connection(db: DB) -> None:
    """Core DML on an AUTOCOMMIT connection (no commit event) is invalidated."""
    if db.mode == "async":
        pytest.skip("driven through the sync engine")
    open_tickets = org_open_count(db, Counted())
    await open_tickets(7)
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(update(Ticket.__table__).where(Ticket.__table__.c.id == 1).values(status="closed"))
    assert not await db.cache.exists("org:7:open")


def test_cache_fixture_is_the_tier_asked_for(db: DB, request: pytest.FixtureRequest) -> None:
    """The ORM suite's cache is the in-process tier, or Redis Cluster (tiered when async) in `-cluster`."""
    assert isinstance(db.cache, Cache)
    tiers = {name: t.backend for name, t in db.cache.stats().tiers.items()}
    if request.node.callspec.id.endswith("-cluster"):
        expected = {"l2": "redis-cluster"} | ({"l1": "memory"} if db.mode == "async" else {})
    else:
        expected = {"l1": "memory"}
    assert tiers == expected
