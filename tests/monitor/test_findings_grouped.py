"""Findings are grouped: one row per statement shape, relationship, index, route; counts are exact."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from perfkit.db import DbConfig, instrument_engine, track, uninstrument_engine
from perfkit.metrics import Collector
from perfkit.monitor import findings, recommend
from perfkit.monitor.config import Budgets

from .conftest import AUTH, Env

REQUESTS = 25


async def test_report_groups_slow_queries_and_n_plus_one(env: Env) -> None:
    """25 requests of /tickets and /search: one group per shape with exact counts, one EXPLAIN each."""
    for _ in range(REQUESTS):
        assert (await env.client.get("/tickets")).status_code == 200
        assert (await env.client.get("/search")).status_code == 200
    report = (await env.client.get("/perf/report?window=5m", headers=AUTH)).json()
    slow = report["findings"]["slow_queries"]
    ids = [g["shape_id"] for g in slow]
    assert len(ids) == len(set(ids)) == 3, [g["statement"] for g in slow]  # tickets, comments, search
    by_routes = {(tuple(g["routes"].items()), "comments" in g["statement"]): g for g in slow}
    assert by_routes[(("/tickets", 5 * REQUESTS),), True]["count"] == 5 * REQUESTS  # a lazy load per ticket
    assert by_routes[(("/tickets", REQUESTS),), False]["count"] == REQUESTS  # the list itself
    assert by_routes[(("/search", REQUESTS),), False]["count"] == REQUESTS
    assert sum(g["count"] for g in slow) == report["kpis"]["database"]["slow_queries"]
    for group in slow:
        assert group["explain"], group
        assert group["first_seen"] <= group["last_seen"]
        assert group["total_ms"] > 0 and group["p95_ms"] is not None and group["p95_ms"] <= group["max_ms"]
        assert "parameters" not in group  # redacted unless show_parameters
    assert [g["total_ms"] for g in slow] == sorted((g["total_ms"] for g in slow), reverse=True)
    [nplus] = report["findings"]["n_plus_one"]
    assert nplus["relationship"] == "Ticket.comments"
    assert nplus["count"] == REQUESTS and nplus["routes"] == {"/tickets": REQUESTS}
    assert nplus["fix"] == "selectinload(Ticket.comments)"
    [rec] = [r for r in report["recommendations"] if r["kind"] == "n_plus_one"]
    assert rec["evidence"]["occurrences"] == REQUESTS
    [index] = report["findings"]["index_suggestions"]
    assert index["sql"] == "CREATE INDEX ix_tickets_status ON tickets (status)"


async def test_findings_api_pages_groups(env: Env) -> None:
    """`/perf/api/findings?group=1` pages the groups; the raw findings stay available without it."""
    for _ in range(3):
        assert (await env.client.get("/tickets")).status_code == 200
    grouped = (await env.client.get("/perf/api/findings?kind=slow_query&group=1", headers=AUTH)).json()
    assert grouped["grouped"] is True and grouped["total"] == 2
    assert sorted(g["count"] for g in grouped["items"]) == [3, 15]
    raw = (await env.client.get("/perf/api/findings?kind=slow_query", headers=AUTH)).json()
    assert raw["grouped"] is False and raw["total"] == 18
    nplus = (await env.client.get("/perf/api/findings?kind=n_plus_one&group=1", headers=AUTH)).json()
    assert [(g["relationship"], g["count"]) for g in nplus["items"]] == [("Ticket.comments", 3)]
    bad = await env.client.get("/perf/api/findings?kind=nope&group=1", headers=AUTH)
    assert bad.status_code == 400 and "group" in bad.json()["error"]


def test_counts_stay_exact_when_the_ring_forgets(tmp_path: Path) -> None:
    """A ring of 10 findings, 30 slow runs of one shape: the group still counts 30 from the histogram."""
    engine = create_engine(f"sqlite:///{tmp_path}/ring.db")
    collector = Collector(ring_size=10)
    instrument_engine(engine, config=DbConfig(slow_query=1e-9), collector=collector)
    try:
        with engine.connect() as conn, track("/r"):
            for i in range(30):
                conn.execute(text("SELECT :n + 1"), {"n": i})
        snapshot = collector.snapshot()
        assert len(snapshot["findings"]["slow_query"]) == 10
        kept = snapshot["findings"]
        [group] = findings.slow_queries(snapshot, kept["slow_query"], kept["query_plan"])
        assert group["count"] == 30 and group["routes"] == {"/r": 30}
        assert group["explain"]
    finally:
        uninstrument_engine(engine)
        engine.dispose()


def test_order_by_suggestion_recommends_its_index() -> None:
    """An ORDER BY ... LIMIT suggestion, however often seen, is one index recommendation naming the sort."""
    suggestion: dict[str, Any] = {
        "table": "item", "columns": ["owner_id", "created_at"], "reason": "order_by",
        "order_by": ["created_at DESC"], "evidence": "Seq Scan on item",
        "sql": "CREATE INDEX ix_item_owner_id_created_at ON item (owner_id, created_at DESC)", "at": 1.0,
    }  # fmt: skip
    groups = findings.grouped({"metrics": {}}, {"index_suggestion": [suggestion, {**suggestion, "at": 2.0}]})
    [group] = groups["index_suggestions"]
    assert group["count"] == 2 and group["first_seen"] == 1.0 and group["last_seen"] == 2.0
    recs = recommend.recommend(
        {"requests": 0}, {}, {}, {"namespaces": {}}, {"queues": {}}, {}, {}, groups, [], Budgets()
    )
    [rec] = [r for r in recs if r["kind"] == "index"]
    assert rec["message"] == "full scan and sort of item for ORDER BY created_at DESC LIMIT: add an index"
    assert rec["fix"] == suggestion["sql"]
