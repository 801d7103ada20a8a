"""Index suggestions for `ORDER BY ... LIMIT` plans that read and sort a whole table (SQLite, PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import DateTime, MetaData, String, create_engine, insert, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from perfkit.db import DbConfig, instrument_engine, track, uninstrument_engine
from perfkit.db.statements import equality_columns, sort_columns
from perfkit.metrics import Collector
from tests.conftest import require_postgres

from .conftest import PG_URL

ROWS = 3000


class Base(DeclarativeBase):
    metadata = MetaData()


class FeedItem(Base):
    __tablename__ = "pk_sort_feed_items"
    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)


TABLE = FeedItem.__tablename__


@dataclass
class Db:
    engine: Any
    collector: Collector

    def instrument(self) -> None:
        """(Re-)instrument: a fresh EXPLAIN-once memory, every statement slow."""
        uninstrument_engine(self.engine)
        instrument_engine(
            self.engine, config=DbConfig(slow_query=1e-9, explain=True), collector=self.collector
        )

    def run(self, statement: Any) -> list[dict[str, Any]]:
        """Run `statement` in a request and return the index suggestions it produced."""
        self.collector.reset()
        self.instrument()
        with Session(self.engine) as session, track("/feed"):
            session.execute(statement).all()
        return self.collector.findings("index_suggestion")

    def plan(self) -> str:
        [finding] = [f for f in self.collector.findings("slow_query") if TABLE in f["statement"]]
        return "\n".join(finding["explain"])


def admin(sql: str) -> None:
    engine = create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.begin() as conn:
            conn.execute(text(sql))
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Db]:
    """A table of 3,000 rows without an index on created_at; PostgreSQL: in a schema of its own, dropped."""
    schema = None
    if request.param == "sqlite":
        engine = create_engine(f"sqlite:///{tmp_path / 'sort.db'}")
    else:
        require_postgres()
        schema = f"perfkit_sort_{uuid.uuid4().hex[:12]}"
        url = PG_URL.replace("postgresql://", "postgresql+psycopg://")
        admin(f'CREATE SCHEMA "{schema}"')
        engine = create_engine(url, connect_args={"options": f"-csearch_path={schema}"})
    try:
        assert engine.dialect.name == ("sqlite" if schema is None else "postgresql")
        Base.metadata.create_all(engine)
        start = dt.datetime(2024, 1, 1)
        rows = [
            {"id": i, "status": "open" if i % 3 else "closed", "created_at": start + dt.timedelta(minutes=i)}
            for i in range(1, ROWS + 1)
        ]
        with engine.begin() as conn:
            conn.execute(insert(FeedItem), rows)
            if schema is not None:
                conn.execute(text(f"ANALYZE {TABLE}"))
        yield Db(engine, Collector())
    finally:
        uninstrument_engine(engine)
        engine.dispose()
        if schema is not None:
            admin(f'DROP SCHEMA "{schema}" CASCADE')


def test_order_by_limit_over_full_scan_suggests_an_index_on_the_sort_key(db: Db) -> None:
    """`ORDER BY created_at DESC LIMIT 10` over a full scan and sort: index created_at; once made, no more."""
    latest = select(FeedItem).order_by(FeedItem.created_at.desc()).limit(10)
    [suggestion] = db.run(latest)
    assert suggestion["reason"] == "order_by"
    assert suggestion["table"] == TABLE
    assert suggestion["columns"] == ["created_at"]
    assert suggestion["order_by"] == ["created_at DESC"]
    assert suggestion["sql"] == f"CREATE INDEX ix_{TABLE}_created_at ON {TABLE} (created_at DESC)"
    with db.engine.begin() as conn:
        conn.execute(text(suggestion["sql"]))
    assert db.run(latest) == []
    plan = db.plan()
    assert f"ix_{TABLE}_created_at" in plan, plan


def test_filter_equality_columns_lead_the_sort_index(db: Db) -> None:
    """`WHERE status = ? ORDER BY created_at DESC LIMIT 10`: one index (status, created_at DESC)."""
    query = select(FeedItem).where(FeedItem.status == "open").order_by(FeedItem.created_at.desc()).limit(10)
    [suggestion] = db.run(query)
    assert suggestion["columns"] == ["status", "created_at"]
    assert (
        suggestion["sql"] == f"CREATE INDEX ix_{TABLE}_status_created_at ON {TABLE} (status, created_at DESC)"
    )
    with db.engine.begin() as conn:
        conn.execute(text(suggestion["sql"]))
    assert db.run(query) == []


def test_order_by_without_limit_gets_no_sort_suggestion(db: Db) -> None:
    """Sorting every row is not what an index saves: without LIMIT there is no ORDER BY suggestion."""
    assert db.run(select(FeedItem.id).order_by(FeedItem.created_at.desc())) == []


def test_sort_key_parsing() -> None:
    """Plain, qualified and quoted sort keys become index terms; expressions and other tables do not."""
    tables: set[str | None] = {"items", "i"}
    assert sort_columns(["created_at DESC"], tables) == ["created_at DESC"]
    assert sort_columns(['"i"."created_at" ASC', "id"], tables) == ["created_at", "id"]
    assert sort_columns(["created_at DESC NULLS LAST"], tables) == ["created_at DESC NULLS LAST"]
    assert sort_columns(["lower(title)"], tables) is None
    assert sort_columns(["u.name"], tables) is None
    assert equality_columns("((status)::text = 'a'::text) AND (n >= 3) AND (u.x = 1)", tables) == ["status"]


@pytest.mark.parametrize("kind", ["aiosqlite", pytest.param("asyncpg", marks=pytest.mark.postgres)])
async def test_async_engines_explain_and_suggest(kind: str, tmp_path: Path) -> None:
    """AsyncEngine (aiosqlite, asyncpg) slow queries carry their EXPLAIN and the ORDER BY suggestion."""
    from sqlalchemy.ext.asyncio import create_async_engine

    schema = None
    if kind == "aiosqlite":
        engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'sort.db'}")
    else:
        require_postgres()
        schema = f"perfkit_sort_{uuid.uuid4().hex[:12]}"
        admin(f'CREATE SCHEMA "{schema}"')
        engine = create_async_engine(
            PG_URL.replace("postgresql://", "postgresql+asyncpg://"),
            connect_args={"server_settings": {"search_path": schema}},
        )
    collector = Collector()
    try:
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
            await conn.execute(insert(FeedItem), [
                {"id": i, "status": "open", "created_at": dt.datetime(2024, 1, 1) + dt.timedelta(minutes=i)}
                for i in range(1, 201)
            ])  # fmt: skip
        instrument_engine(engine, config=DbConfig(slow_query=1e-9, explain=True), collector=collector)
        with track("/feed"):
            async with engine.connect() as conn:
                await conn.execute(select(FeedItem.id).order_by(FeedItem.created_at.desc()).limit(5))
        [finding] = [f for f in collector.findings("slow_query") if TABLE in f["statement"]]
        assert finding.get("explain"), finding
        [suggestion] = collector.findings("index_suggestion")
        assert suggestion["sql"] == f"CREATE INDEX ix_{TABLE}_created_at ON {TABLE} (created_at DESC)"
    finally:
        uninstrument_engine(engine)
        await engine.dispose()
        if schema is not None:
            admin(f'DROP SCHEMA "{schema}" CASCADE')
