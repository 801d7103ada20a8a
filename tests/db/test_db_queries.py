"""Query accounting, slow-query log with EXPLAIN and index suggestions, repeats, pool status."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

import perfkit
from perfkit.db import DbConfig, instrument_engine, pool_status, track, uninstrument_engine
from perfkit.db.statements import redact, shape
from perfkit.metrics import Collector
from perfkit.web import WebConfig

from .conftest import SyncDb


def slow_everything(db: SyncDb) -> None:
    """Re-instrument with a threshold every query passes, so 'slow' is deterministic."""
    uninstrument_engine(db.engine)
    instrument_engine(db.engine, config=DbConfig(slow_query=1e-9), collector=db.collector)


def test_per_request_count_and_time(sync_db: SyncDb) -> None:
    """track() counts the queries and their time; the latency histogram sees each one."""
    with Session(sync_db.engine) as session, track() as stats:
        for i in range(1, 4):
            session.get(sync_db.models.Ticket, i)
    assert stats.db_count == 3
    assert stats.db_time > 0
    hist = sync_db.collector.histogram("db_query_duration_seconds", ("operation",))
    assert hist.count(("SELECT",)) >= 3


def test_slow_query_logged_redacted_with_explain(sync_db: SyncDb, caplog: pytest.LogCaptureFixture) -> None:
    """A slow statement is logged with redacted parameters, its route, and an EXPLAIN plan."""
    slow_everything(sync_db)
    m = sync_db.models
    with (
        caplog.at_level(logging.WARNING, logger="perfkit.db"),
        Session(sync_db.engine) as session,
        track("/tickets/open"),
    ):
        session.scalars(select(m.Ticket).where(m.Ticket.status == "secret-value")).all()
    [finding] = [f for f in sync_db.collector.findings("slow_query") if "tickets.status" in f["statement"]]
    assert finding["route"] == "/tickets/open"
    assert "secret-value" not in repr(finding)
    assert "<str>" in repr(finding["parameters"])
    assert finding["explain"]
    assert any("slow query" in r.getMessage() for r in caplog.records)
    assert "secret-value" not in caplog.text


def test_explain_once_per_shape(sync_db: SyncDb) -> None:
    """The same statement shape is explained once, however often it is slow."""
    slow_everything(sync_db)
    m = sync_db.models
    with Session(sync_db.engine) as session, track():
        for status in ("open", "closed", "open", "x"):
            session.scalars(select(m.Ticket).where(m.Ticket.status == status)).all()
    found = [f for f in sync_db.collector.findings("slow_query") if "tickets.status" in f["statement"]]
    assert len(found) == 4
    assert sum("explain" in f for f in found) == 1


def test_index_suggestion_from_seq_scan(sync_db: SyncDb) -> None:
    """A full scan filtered on tickets.status yields a CREATE INDEX suggestion for that column."""
    slow_everything(sync_db)
    m = sync_db.models
    with Session(sync_db.engine) as session, track():
        session.scalars(select(m.Ticket).where(m.Ticket.status == "open")).all()
    suggestions = sync_db.collector.findings("index_suggestion")
    assert any(s["table"] == "tickets" and s["columns"] == ["status"] for s in suggestions), suggestions
    assert "CREATE INDEX ix_tickets_status ON tickets (status)" in [s["sql"] for s in suggestions]


def test_primary_key_lookup_not_suggested(sync_db: SyncDb) -> None:
    """A lookup by primary key uses the index: no suggestion."""
    slow_everything(sync_db)
    with Session(sync_db.engine) as session, track():
        session.get(sync_db.models.Ticket, 3)
    assert sync_db.collector.findings("index_suggestion") == []


def test_repeated_identical_queries(sync_db: SyncDb) -> None:
    """The same statement with the same parameters three times in one request is reported once."""
    comment = sync_db.models.Comment

    def count(ticket: int) -> Any:
        return select(func.count()).select_from(comment).where(comment.ticket_id == ticket)

    with sync_db.engine.connect() as conn, track("/dupes"):
        for _ in range(5):
            assert conn.execute(count(1)).scalar() == 2
        conn.execute(count(2)).scalar()
    [finding] = sync_db.collector.findings("repeated_query")
    assert finding["route"] == "/dupes"
    assert finding["count"] == 3
    assert "<int>" in repr(finding["parameters"])


def test_pool_status_and_wait(sync_db: SyncDb) -> None:
    """pool_status reports size and checked-out connections; checkouts feed the wait histogram."""
    with sync_db.engine.connect():
        status = pool_status(sync_db.engine)
        assert status["checked_out"] >= 1
    assert "class" in status
    assert sync_db.collector.histogram("db_pool_wait_seconds").count() >= 1


def test_server_timing_counts_request_queries(sync_db: SyncDb) -> None:
    """Through instrument(app, engine=...), Server-Timing shows the request's query count."""
    m = sync_db.models

    async def tickets(request: Request) -> Response:
        with Session(sync_db.engine) as session:
            rows = session.scalars(select(m.Ticket)).all()
            return JSONResponse([len(t.comments) for t in rows])

    collector = sync_db.collector
    app = perfkit.instrument(
        Starlette(routes=[Route("/tickets", tickets)]),
        engine=sync_db.engine,
        config=WebConfig(),
        collector=collector,
    )
    response = TestClient(app).get("/tickets")
    assert response.json() == [2] * 6
    assert 'desc="7 queries"' in response.headers["server-timing"]
    [finding] = collector.findings("n_plus_one")
    assert finding["route"] == "/tickets"
    queries = collector.counter("http_db_queries_total", ("method", "route"))
    assert queries.value(("GET", "/tickets")) == 7


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"a": "pw", "b": 3, "c": None}, {"a": "<str>", "b": "<int>", "c": "NULL"}),
        (("pw", 2.5), ["<str>", "<float>"]),
        ([{"a": "x"}] * 5, [{"a": "<str>"}] * 3 + ["..."]),
    ],
)
def test_redaction(params: Any, expected: Any) -> None:
    """Parameter values never appear; only their types do."""
    assert redact(params) == expected


def test_shape_normalizes_literals_and_in_lists() -> None:
    """Literals and IN-lists of any length normalize to one shape."""
    a = shape("SELECT * FROM t WHERE id IN (?, ?, ?) AND x = 'a'")
    b = shape("SELECT *  FROM t WHERE id IN (?, ?) AND x = 'bb'")
    assert a == b


def test_instrumenting_twice_is_noop(sync_db: SyncDb) -> None:
    """A second instrument_engine on one engine does not double-count."""
    again = instrument_engine(sync_db.engine, collector=Collector())
    with sync_db.engine.connect() as conn, track() as stats:
        conn.execute(text("SELECT 1"))
    assert stats.db_count == 1
    assert again.engine is sync_db.engine


def test_explain_analyze_opt_in(sync_db: SyncDb) -> None:
    """With explain_analyze on, PostgreSQL plans carry actual timings; SQLite keeps its query plan."""
    uninstrument_engine(sync_db.engine)
    instrument_engine(
        sync_db.engine, config=DbConfig(slow_query=1e-9, explain_analyze=True), collector=sync_db.collector
    )
    m = sync_db.models
    with Session(sync_db.engine) as session, track():
        session.scalars(select(m.Ticket).where(m.Ticket.status == "open")).all()
    [finding] = [f for f in sync_db.collector.findings("slow_query") if "tickets.status" in f["statement"]]
    plan = " ".join(finding["explain"])
    if sync_db.engine.dialect.name == "postgresql":
        assert "actual time" in plan
    else:
        assert "SCAN" in plan
