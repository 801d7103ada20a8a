"""N+1 detection from lazy loads, on SQLite and PostgreSQL, sync and async sessions."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, selectinload

from perfkit.db import DbConfig, instrument_engine, is_instrumented, track, uninstrument_engine
from perfkit.metrics import Collector

from .conftest import AsyncDb, SyncDb, seeded_sync_db


@pytest.fixture
def other(tmp_path: Path) -> Iterator[SyncDb]:
    """A second seeded SQLite engine with models of its own, instrumented for a collector of its own."""
    engine = create_engine(f"sqlite:///{tmp_path / 'other.sqlite'}")
    yield seeded_sync_db(engine)
    uninstrument_engine(engine)
    engine.dispose()


def _lazy_comments(db: SyncDb, route: str) -> dict[tuple[str, str], int]:
    """Every ticket's comments read lazily in one request on `db`; the request's lazy-load tally."""
    with Session(db.engine) as session, track(route) as stats:
        assert sum(len(t.comments) for t in session.scalars(select(db.models.Ticket)).all()) == 12
    return stats.lazy_loads


def test_sync_lazy_collection_flagged_with_fix(sync_db: SyncDb) -> None:
    """Lazy-loading Ticket.comments for every ticket is one N+1 finding naming selectinload."""
    m = sync_db.models
    with Session(sync_db.engine) as session, track("/tickets") as stats:
        tickets = session.scalars(select(m.Ticket)).all()
        total = sum(len(t.comments) for t in tickets)
    assert total == 12
    assert stats.lazy_loads[("Ticket", "comments")] == 6
    [finding] = sync_db.collector.findings("n_plus_one")
    assert finding["relationship"] == "Ticket.comments"
    assert finding["fix"] == "selectinload(Ticket.comments)"
    assert finding["route"] == "/tickets"
    assert stats.db_count == 7  # 1 + N: the accounting the Server-Timing header shows


def test_two_engines_two_collectors_each_n_plus_one_reported_once_where_it_ran(
    sync_db: SyncDb, other: SyncDb
) -> None:
    """With two engines instrumented for two collectors, each lazy load counts once and each engine's
    N+1 is reported to its own collector only (each collector's detector once counted every load)."""
    assert _lazy_comments(sync_db, "/here") == {("Ticket", "comments"): 6}
    assert _lazy_comments(other, "/there") == {("Ticket", "comments"): 6}
    assert [f["route"] for f in sync_db.collector.findings("n_plus_one")] == ["/here"]
    assert [f["route"] for f in other.collector.findings("n_plus_one")] == ["/there"]


def test_uninstrumented_engine_reports_nowhere_and_the_other_keeps_reporting(
    sync_db: SyncDb, other: SyncDb
) -> None:
    """After uninstrument_engine(other), its lazy loads are nobody's finding; this engine's still are."""
    uninstrument_engine(other.engine)
    assert _lazy_comments(other, "/there") == {}
    assert _lazy_comments(sync_db, "/here") == {("Ticket", "comments"): 6}
    assert [f["route"] for f in sync_db.collector.findings("n_plus_one")] == ["/here"]
    assert other.collector.findings("n_plus_one") == []


def test_two_holds_on_one_engine_keep_its_hooks_until_both_let_go(sync_db: SyncDb) -> None:
    """Two instrument_engine calls on one engine share its hooks: removing one (twice, even) leaves
    statements and lazy loads counted and N+1 reported; they come off with the second's remove()."""
    uninstrument_engine(sync_db.engine)  # the fixture's hold: these two are the only ones
    config = DbConfig(nplusone_threshold=3)
    first = instrument_engine(sync_db.engine, config=config, collector=sync_db.collector)
    second = instrument_engine(sync_db.engine, collector=Collector())
    first.remove()
    first.remove()
    assert is_instrumented(sync_db.engine)
    assert _lazy_comments(sync_db, "/still") == {("Ticket", "comments"): 6}
    assert [f["route"] for f in sync_db.collector.findings("n_plus_one")] == ["/still"]
    second.remove()
    assert not is_instrumented(sync_db.engine)
    assert _lazy_comments(sync_db, "/gone") == {}
    assert len(sync_db.collector.findings("n_plus_one")) == 1


def test_session_bound_to_a_connection_is_its_engines(sync_db: SyncDb) -> None:
    """A Session(bind=connection) on the instrumented engine is counted and reported for that engine."""
    m = sync_db.models
    with sync_db.engine.connect() as conn, Session(bind=conn) as session, track("/conn") as stats:
        assert sum(len(t.comments) for t in session.scalars(select(m.Ticket)).all()) == 12
    assert stats.lazy_loads == {("Ticket", "comments"): 6}
    assert [f["route"] for f in sync_db.collector.findings("n_plus_one")] == ["/conn"]


def test_orm_dml_through_the_session_is_not_broken(sync_db: SyncDb) -> None:
    """session.execute(insert/update) passes through the detector (it once raised: no load options)."""
    m = sync_db.models
    with Session(sync_db.engine) as session, track() as stats:
        session.execute(insert(m.Author), [{"id": 100, "name": "x"}, {"id": 101, "name": "y"}])
        session.execute(update(m.Author).where(m.Author.id == 100).values(name="z"))
        session.commit()
        assert session.get(m.Author, 100).name == "z"
    assert stats.db_count >= 2
    assert sync_db.collector.findings("n_plus_one") == []


def test_repeated_n_plus_one_is_recorded_each_time_but_logged_once(
    sync_db: SyncDb, caplog: pytest.LogCaptureFixture
) -> None:
    """Every request with the N+1 is a finding and a count; the log gets one line per route a minute."""
    m = sync_db.models
    with caplog.at_level("WARNING", logger="perfkit.db"):
        for _ in range(5):
            with Session(sync_db.engine) as session, track("/tickets"):
                sum(len(t.comments) for t in session.scalars(select(m.Ticket)).all())
    assert len(sync_db.collector.findings("n_plus_one")) == 5
    lines = [r for r in caplog.records if "N+1 on Ticket.comments" in r.getMessage()]
    assert len(lines) == 1


def test_sync_many_to_one_suggests_joinedload(sync_db: SyncDb) -> None:
    """A lazy many-to-one (Ticket.author) is flagged with joinedload."""
    m = sync_db.models
    with Session(sync_db.engine) as session, track():
        names = [t.author.name for t in session.scalars(select(m.Ticket)).all()]
    assert len(names) == 6
    [finding] = sync_db.collector.findings("n_plus_one")
    assert finding["fix"] == "joinedload(Ticket.author)"


def test_eager_loading_is_not_flagged(sync_db: SyncDb) -> None:
    """With selectinload there are no lazy loads and no finding (no false positive)."""
    m = sync_db.models
    with Session(sync_db.engine) as session, track() as stats:
        tickets = session.scalars(select(m.Ticket).options(selectinload(m.Ticket.comments))).all()
        assert sum(len(t.comments) for t in tickets) == 12
    assert stats.db_count == 2
    assert sync_db.collector.findings("n_plus_one") == []


def test_below_threshold_not_flagged(sync_db: SyncDb) -> None:
    """Two lazy loads (threshold 3) are not an N+1."""
    m = sync_db.models
    with Session(sync_db.engine) as session, track():
        for ticket in session.scalars(select(m.Ticket).limit(2)).all():
            assert len(ticket.comments) == 2
    assert sync_db.collector.findings("n_plus_one") == []


async def test_async_session_lazy_loads_flagged(async_db: AsyncDb) -> None:
    """AsyncSession lazy loads through awaitable_attrs are detected the same way."""
    m = async_db.models
    async with AsyncSession(async_db.engine) as session:
        with track("/async") as stats:
            tickets = (await session.scalars(select(m.Ticket))).all()
            total = sum([len(await t.awaitable_attrs.comments) for t in tickets])
    assert total == 12
    assert stats.db_count == 7
    [finding] = async_db.collector.findings("n_plus_one")
    assert finding["fix"] == "selectinload(Ticket.comments)"
    assert finding["route"] == "/async"


async def test_concurrent_requests_counted_apart(async_db: AsyncDb) -> None:
    """Two concurrent requests with 2 lazy loads each are not summed into one N+1 (contextvars)."""
    m = async_db.models

    async def request(ids: list[int]) -> int:
        async with AsyncSession(async_db.engine) as session:
            with track() as stats:
                tickets = (await session.scalars(select(m.Ticket).where(m.Ticket.id.in_(ids)))).all()
                for t in tickets:
                    await t.awaitable_attrs.comments
                return stats.db_count

    counts = await asyncio.gather(request([1, 2]), request([3, 4]))
    assert counts == [3, 3]
    assert async_db.collector.findings("n_plus_one") == []


def test_no_request_no_tracking(sync_db: SyncDb) -> None:
    """Outside a request or track() block nothing is counted per request (no global state grows)."""
    m = sync_db.models
    with Session(sync_db.engine) as session:
        for t in session.scalars(select(m.Ticket)).all():
            assert len(t.comments) == 2
    assert sync_db.collector.findings("n_plus_one") == []
