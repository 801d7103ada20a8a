"""EXPLAIN of a slow statement never breaks the application's PostgreSQL transaction."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.ext.asyncio import create_async_engine

from perfkit.db import DbConfig, instrument_engine, uninstrument_engine
from perfkit.metrics import Collector
from tests.conftest import require_postgres

from .conftest import PG_URL

pytestmark = pytest.mark.postgres

# EXPLAIN of this statement fails once the statement itself has run: the table then exists
INTO = "SELECT 1 AS x INTO TEMP perfkit_twice"


def _failed_explains(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "EXPLAIN failed" in r.getMessage()]


def test_a_failing_explain_leaves_a_sync_transaction_usable(caplog: pytest.LogCaptureFixture) -> None:
    """psycopg: inside a transaction, a failed EXPLAIN is rolled back to its savepoint and the
    transaction goes on to commit."""
    require_postgres()
    engine = create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://"))
    collector = Collector()
    instrument_engine(engine, config=DbConfig(slow_query=1e-9, explain=True), collector=collector)
    caplog.set_level(logging.INFO, logger="perfkit.db")
    try:
        with engine.begin() as conn:
            conn.execute(text(INTO))
            assert conn.execute(text("SELECT count(*) FROM perfkit_twice")).scalar() == 1
            plan = [f for f in collector.findings("slow_query") if "count(*)" in f["statement"]]
            assert plan and plan[0]["explain"], "the next statement is still explained"
        assert any("perfkit_twice" in m for m in _failed_explains(caplog))
    finally:
        uninstrument_engine(engine)
        engine.dispose()


def test_explain_analyze_inside_a_transaction_is_undone() -> None:
    """EXPLAIN ANALYZE of a SELECT with a side effect runs in a savepoint that is rolled back: the
    application's transaction sees only its own write."""
    require_postgres()
    engine = create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://"))
    collector = Collector()
    config = DbConfig(slow_query=1e-9, explain=True, explain_analyze=True)
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TEMP TABLE perfkit_writes (x int)"))
            conn.execute(text(
                "CREATE FUNCTION pg_temp.perfkit_write() RETURNS int LANGUAGE sql"
                " AS 'INSERT INTO perfkit_writes VALUES (1) RETURNING 1'"
            ))  # fmt: skip
            instrument_engine(engine, config=config, collector=collector)
            assert conn.execute(text("SELECT pg_temp.perfkit_write()")).scalar() == 1
            uninstrument_engine(engine)
            # EXPLAIN ANALYZE ran the function a second time; without the rollback this would be 2
            assert conn.execute(text("SELECT count(*) FROM perfkit_writes")).scalar() == 1
        [finding] = [f for f in collector.findings("slow_query") if "perfkit_write()" in f["statement"]]
        assert finding["explain"], "the statement was still explained (with ANALYZE)"
    finally:
        uninstrument_engine(engine)
        engine.dispose()


async def test_a_failing_explain_leaves_an_asyncpg_transaction_usable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """asyncpg through SQLAlchemy's adapter: the same, on an AsyncEngine."""
    require_postgres()
    engine = create_async_engine(PG_URL.replace("postgresql://", "postgresql+asyncpg://"))
    collector = Collector()
    instrument_engine(engine, config=DbConfig(slow_query=1e-9, explain=True), collector=collector)
    caplog.set_level(logging.INFO, logger="perfkit.db")
    try:
        async with engine.begin() as conn:
            await conn.execute(text(INTO))
            assert (await conn.execute(text("SELECT count(*) FROM perfkit_twice"))).scalar() == 1
        assert any("perfkit_twice" in m for m in _failed_explains(caplog))
    finally:
        uninstrument_engine(engine)
        await engine.dispose()


def test_autocommit_connections_are_still_explained() -> None:
    """Outside a transaction (AUTOCOMMIT) there is no savepoint to take; EXPLAIN still runs."""
    require_postgres()
    engine = create_engine(
        PG_URL.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT"
    )
    collector = Collector()
    instrument_engine(engine, config=DbConfig(slow_query=1e-9, explain=True), collector=collector)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 41 + 1 AS answer")).scalar() == 42
        [finding] = [f for f in collector.findings("slow_query") if "41 + 1" in f["statement"]]
        assert finding["explain"]
    finally:
        uninstrument_engine(engine)
        engine.dispose()
