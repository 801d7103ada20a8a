"""Real databases for the SQLAlchemy instrumentation tests: SQLite and PostgreSQL, sync and async.

Each PostgreSQL test gets its own schema (dropped afterwards), so runs never touch shared objects.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, ForeignKey, MetaData, String, create_engine, text
from sqlalchemy.ext.asyncio import AsyncAttrs, AsyncEngine, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from perfkit.db import instrument_engine, uninstrument_engine
from perfkit.db.config import DbConfig
from perfkit.metrics import Collector

PG_URL = os.environ.get("PERFKIT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def pg_available() -> bool:
    try:
        import psycopg

        psycopg.connect(PG_URL, connect_timeout=2).close()
    except Exception:
        return False
    return True


PG_OK = pg_available()
needs_pg = pytest.mark.skipif(not PG_OK, reason=f"PostgreSQL not reachable at {PG_URL}")


@dataclass
class Models:
    Base: Any
    Ticket: Any
    Comment: Any
    Author: Any


def make_models(schema: str | None = None) -> Models:
    """Fresh mapped classes per test (own MetaData, optionally in a schema)."""

    class Base(AsyncAttrs, DeclarativeBase):
        metadata = MetaData(schema=schema)

    class Author(Base):
        __tablename__ = "authors"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(String(50))

    class Ticket(Base):
        __tablename__ = "tickets"
        id: Mapped[int] = mapped_column(primary_key=True)
        status: Mapped[str] = mapped_column(String(20))
        author_id: Mapped[int] = mapped_column(ForeignKey(Author.id))
        author: Mapped[Author] = relationship()
        comments: Mapped[list[Comment]] = relationship(back_populates="ticket")

    class Comment(Base):
        __tablename__ = "comments"
        id: Mapped[int] = mapped_column(primary_key=True)
        ticket_id: Mapped[int] = mapped_column(ForeignKey(Ticket.id))
        body: Mapped[str] = mapped_column(String(100))
        ticket: Mapped[Ticket] = relationship(back_populates="comments")

    return Models(Base, Ticket, Comment, Author)


def seed(session: Session, m: Models, tickets: int = 6) -> None:
    authors = [m.Author(id=i + 1, name=f"author {i}") for i in range(tickets)]
    session.add_all(authors)
    for i in range(tickets):
        ticket = m.Ticket(id=i + 1, status="open" if i % 2 else "closed", author_id=i + 1)
        ticket.comments = [m.Comment(id=i * 10 + j, body=f"c{j}") for j in range(2)]
        session.add(ticket)
    session.commit()


@dataclass
class SyncDb:
    engine: Any
    models: Models
    collector: Collector


@dataclass
class AsyncDb:
    engine: AsyncEngine
    models: Models
    collector: Collector


def _config() -> DbConfig:
    return DbConfig(slow_query=60.0, nplusone_threshold=3, repeat_threshold=3)


def seeded_sync_db(engine: Engine, schema: str | None = None) -> SyncDb:
    """The test models on `engine` (in `schema`), seeded; the engine instrumented for its own collector."""
    models = make_models(schema)
    models.Base.metadata.create_all(engine)
    with Session(engine) as session:
        seed(session, models)
    collector = Collector()
    instrument_engine(engine, config=_config(), collector=collector)
    return SyncDb(engine, models, collector)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=[pytest.mark.postgres, needs_pg])])
def sync_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SyncDb]:
    """A seeded, instrumented sync engine on SQLite or PostgreSQL (psycopg 3); its schema is dropped after."""
    schema = None
    if request.param == "sqlite":
        engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    else:
        schema = f"perfkit_t_{uuid.uuid4().hex[:12]}"
        engine = create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://"))
        with engine.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        assert engine.dialect.name == ("sqlite" if request.param == "sqlite" else "postgresql")
        yield seeded_sync_db(engine, schema)
    finally:
        uninstrument_engine(engine)
        if schema is not None:
            with engine.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=[pytest.mark.postgres, needs_pg])])
async def async_db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncDb]:
    """A seeded, instrumented AsyncEngine on SQLite (aiosqlite) or PostgreSQL (asyncpg); schema dropped."""
    schema = None
    if request.param == "sqlite":
        engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    else:
        schema = f"perfkit_t_{uuid.uuid4().hex[:12]}"
        engine = create_async_engine(PG_URL.replace("postgresql://", "postgresql+asyncpg://"))
        async with engine.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        assert engine.dialect.name == ("sqlite" if request.param == "sqlite" else "postgresql")
        models = make_models(schema)
        async with engine.begin() as conn:
            await conn.run_sync(models.Base.metadata.create_all)
            await conn.run_sync(lambda sync_conn: seed(Session(bind=sync_conn), models))
        collector = Collector()
        instrument_engine(engine, config=_config(), collector=collector)
        yield AsyncDb(engine, models, collector)
    finally:
        uninstrument_engine(engine)
        if schema is not None:
            async with engine.begin() as conn:
                await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await engine.dispose()
