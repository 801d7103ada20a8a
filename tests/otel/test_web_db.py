"""perfkit.otel on a real Starlette app: the server span, its SQL and cache children, findings, metrics."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.trace import SpanKind, StatusCode
from sqlalchemy import create_engine, text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import perfkit
from perfkit import Cache, ConfigurationError
from perfkit.metrics import Collector
from tests.conftest import REDIS_URL, eventually, redis_missing, service_missing
from tests.otel.conftest import Sdk

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def make_app(sdk: Sdk, tmp_path: Path, cache: Any = None) -> tuple[Any, Any]:
    engine = create_engine(f"sqlite:///{tmp_path / 'otel.db'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)"))
        conn.execute(text("INSERT INTO items VALUES (1, 'one'), (2, 'two')"))

    async def item(request: Request) -> JSONResponse:
        with engine.connect() as conn:
            for _ in range(int(request.query_params.get("repeat", "1"))):
                row = conn.execute(text("SELECT name FROM items WHERE id = :id"), {"id": 1}).one()
        if cache is not None:
            # read "k" (written once), write "seen" every time: a key's own write comes back from Redis
            # as an invalidation of this process's L1 copy, so a key written on every request would
            # only be an L1 hit when the read wins that race
            if await cache.get("k") is None:
                await cache.set("k", row[0])
            await cache.set("seen", row[0])
        return JSONResponse({"name": row[0]})

    async def boom(request: Request) -> JSONResponse:
        raise RuntimeError("boom")

    app = Starlette(routes=[Route("/items/{id}", item), Route("/boom", boom)])
    instrumented = perfkit.instrument(
        app, engine=engine, cache=cache, collector=Collector(), monitor=False, otel=sdk.config
    )
    return instrumented, engine


async def get(app: Any, path: str, **headers: str) -> httpx.Response:
    transport = httpx.ASGITransport(app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return await client.get(path, headers=headers)


async def test_one_server_span_per_request_named_by_route_template(sdk: Sdk, tmp_path: Path) -> None:
    """A request makes one SERVER span `GET /items/{id}`, stable HTTP attributes, no send/receive spans."""
    app, _ = make_app(sdk, tmp_path)
    assert (await get(app, "/items/7")).status_code == 200
    servers = [s for s in sdk.finished() if s.kind is SpanKind.SERVER]
    assert [s.name for s in servers] == ["GET /items/{id}"]
    attrs = dict(servers[0].attributes or {})
    assert attrs["http.request.method"] == "GET"
    assert attrs["http.route"] == "/items/{id}"
    assert attrs["url.path"] == "/items/7"
    assert attrs["url.scheme"] == "http"
    assert attrs["http.response.status_code"] == 200
    assert attrs["network.protocol.version"] == "1.1"
    assert all(s.kind in (SpanKind.SERVER, SpanKind.CLIENT) for s in sdk.finished())
    assert not [s for s in sdk.finished() if "send" in s.name or "receive" in s.name]


async def test_sql_statement_is_a_child_span_with_db_conventions(sdk: Sdk, tmp_path: Path) -> None:
    """Each SQL statement is a CLIENT span under the request's span, with db.system.name/operation/query."""
    app, _ = make_app(sdk, tmp_path)
    await get(app, "/items/1")
    (server,) = sdk.named("GET /items/{id}")
    (sql,) = sdk.named("SELECT items")
    assert sql.kind is SpanKind.CLIENT
    assert sql.parent is not None and sql.parent.span_id == server.context.span_id
    assert sql.context.trace_id == server.context.trace_id
    attrs = dict(sql.attributes or {})
    assert attrs["db.system.name"] == "sqlite"
    assert attrs["db.operation.name"] == "SELECT"
    assert attrs["db.collection.name"] == "items"
    assert attrs["db.query.text"] == "SELECT name FROM items WHERE id = ?"
    assert server.start_time <= sql.start_time <= sql.end_time <= server.end_time  # type: ignore[operator]


async def test_incoming_traceparent_is_the_parent(sdk: Sdk, tmp_path: Path) -> None:
    """A W3C `traceparent` sent by the client makes the server span its child, in its trace."""
    app, _ = make_app(sdk, tmp_path)
    await get(app, "/items/1", traceparent=TRACEPARENT)
    (server,) = sdk.named("GET /items/{id}")
    assert f"{server.context.trace_id:032x}" == TRACEPARENT.split("-")[1]
    assert server.parent is not None and f"{server.parent.span_id:016x}" == TRACEPARENT.split("-")[2]
    assert server.parent.is_remote


async def test_metrics_in_seconds_with_exemplars_pointing_to_the_trace(sdk: Sdk, tmp_path: Path) -> None:
    """`http.server.request.duration` and `db.client.operation.duration` are recorded in seconds, with
    exemplars carrying the request's trace id."""
    app, _ = make_app(sdk, tmp_path)
    await get(app, "/items/1")
    await get(app, "/items/2")
    (server, _) = sdk.named("GET /items/{id}")
    (http,) = sdk.points("http.server.request.duration")
    assert http.count == 2
    assert dict(http.attributes) == {
        "http.request.method": "GET", "http.route": "/items/{id}", "http.response.status_code": 200,
        "url.scheme": "http", "network.protocol.version": "1.1",
    }  # fmt: skip
    assert 0 < http.sum < 5  # seconds, not milliseconds
    traces = {s.context.trace_id for s in sdk.named("GET /items/{id}")}
    assert http.exemplars and {e.trace_id for e in http.exemplars} <= traces
    (db,) = sdk.points("db.client.operation.duration")
    assert db.count == 2 and dict(db.attributes)["db.operation.name"] == "SELECT"
    assert {e.trace_id for e in db.exemplars} <= traces and server.context.trace_id in traces


async def test_failing_request_marks_the_span_as_an_error(sdk: Sdk, tmp_path: Path) -> None:
    """An exception in the app: status ERROR, `error.type` the exception's type, the exception as event."""
    app, _ = make_app(sdk, tmp_path)
    assert (await get(app, "/boom")).status_code == 500
    (server,) = sdk.named("GET /boom")
    assert server.status.status_code is StatusCode.ERROR
    assert dict(server.attributes or {})["error.type"] == "RuntimeError"
    assert [e.name for e in server.events] == ["exception"]
    (point,) = sdk.points("http.server.request.duration")
    assert dict(point.attributes)["error.type"] == "RuntimeError"


async def test_repeated_and_slow_queries_are_span_events(
    sdk: Sdk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Findings land on the request's span: the repeated query with its message, the slow one with
    its EXPLAIN id (the shape id its plan is recorded under)."""
    monkeypatch.setenv("PERFKIT_SLOW_QUERY", "0.000001")
    app, _ = make_app(sdk, tmp_path)
    await get(app, "/items/1?repeat=3")
    (server,) = sdk.named("GET /items/{id}")
    events = {e.name: dict(e.attributes or {}) for e in server.events}
    repeated = events["perfkit.repeated_query"]
    assert repeated["perfkit.count"] == 3 and "load it once" in str(repeated["perfkit.message"])
    slow = events["perfkit.slow_query"]
    assert slow["perfkit.explain_id"] == slow["perfkit.shape_id"]
    plan = events["perfkit.query_plan"]
    assert plan["perfkit.shape_id"] == slow["perfkit.shape_id"]
    assert slow["perfkit.route"] == "/items/{id}"


async def test_n_plus_one_is_a_span_event_with_its_fix(sdk: Sdk, tmp_path: Path) -> None:
    """Lazy loads in a loop: an `perfkit.n_plus_one` event naming the relationship and the fix."""
    from sqlalchemy.orm import Session

    from tests.db.conftest import make_models, seed

    models = make_models()
    engine = create_engine(f"sqlite:///{tmp_path / 'orm.db'}")
    models.Base.metadata.create_all(engine)
    with Session(engine) as session:
        seed(session, models)

    async def tickets(request: Request) -> JSONResponse:
        with Session(engine) as session:
            count = sum(len(t.comments) for t in session.query(models.Ticket).all())
        return JSONResponse({"comments": count})

    app = perfkit.instrument(
        Starlette(routes=[Route("/tickets", tickets)]), engine=engine, collector=Collector(),
        monitor=False, otel=sdk.config,
    )  # fmt: skip
    await get(app, "/tickets")
    (server,) = sdk.named("GET /tickets")
    (event,) = [e for e in server.events if e.name == "perfkit.n_plus_one"]
    attrs = dict(event.attributes or {})
    assert attrs["perfkit.relationship"] == "Ticket.comments"
    assert attrs["perfkit.fix"] == "selectinload(Ticket.comments)"
    assert len([s for s in sdk.finished() if s.kind is SpanKind.CLIENT]) >= 4  # the lazy loads' SQL


async def test_a_closed_instrument_makes_no_more_sql_spans_on_a_shared_engine(
    sdk: Sdk, tmp_path: Path
) -> None:
    """Two instrument(otel=...) calls on one engine: once one is closed, the engine's hooks stay (the
    other holds them) but only the open one still makes SQL spans."""
    engine = create_engine(f"sqlite:///{tmp_path / 'shared.db'}")
    first, second = (
        perfkit.instrument(Starlette(), engine=engine, collector=Collector(), monitor=False, otel=sdk.config)
        for _ in range(2)
    )
    await first.state.perfkit.close()
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    assert [s.name for s in sdk.finished() if s.kind is SpanKind.CLIENT] == ["SELECT"]
    await second.state.perfkit.close()
    engine.dispose()


@pytest.fixture
async def tiered_cache() -> AsyncIterator[Cache]:
    """An L1 (memory) + L2 (the real Redis) cache in a namespace of its own, cleared afterwards."""
    if (reason := redis_missing()) is not None:
        service_missing(reason)
    cache = Cache(REDIS_URL, l1="memory://", namespace=f"otel{uuid.uuid4().hex[:10]}")
    yield cache
    await cache.clear()
    await cache.close()


async def test_cache_operations_are_child_spans_per_tier(
    sdk: Sdk, tmp_path: Path, tiered_cache: Cache
) -> None:
    """A set and a get through L1 + Redis L2: spans per tier operation under the request, and counts."""
    app, _ = make_app(sdk, tmp_path, cache=tiered_cache)

    async def l1_hit() -> bool:  # the L1 serves once its coherence subscription (in Redis) is up
        sdk.spans.clear()
        await get(app, "/items/1")
        return any(
            s.name == "cache get l1" and (s.attributes or {}).get("perfkit.cache.outcome") == "hit"
            for s in sdk.finished()
        )

    await eventually(l1_hit, what="an L1 get span")
    (server,) = sdk.named("GET /items/{id}")
    cache_spans = [s for s in sdk.finished() if s.name.startswith("cache ")]
    names = {s.name for s in cache_spans}
    assert {"cache set l2", "cache get l1"} <= names, names
    assert all(s.parent is not None and s.parent.span_id == server.context.span_id for s in cache_spans)
    (hit,) = [s for s in cache_spans if s.name == "cache get l1"]
    assert hit.kind is SpanKind.INTERNAL and dict(hit.attributes or {})["perfkit.cache.outcome"] == "hit"
    l2 = next(s for s in cache_spans if s.name == "cache set l2")
    assert l2.kind is SpanKind.CLIENT
    assert dict(l2.attributes or {})["perfkit.cache.namespace"] == tiered_cache.namespace
    ops = {(p.attributes["perfkit.cache.tier"], p.attributes["perfkit.cache.operation"]): p.value
           for p in sdk.points("perfkit.cache.operations")}  # fmt: skip
    assert ops[("l2", "set")] >= 1 and ops[("l1", "get")] >= 1


async def test_config_switches_off_cache_spans_and_query_text(
    sdk: Sdk, tmp_path: Path, tiered_cache: Cache
) -> None:
    """`cache_spans=False` keeps the cache counts without spans; `query_text=False` drops the SQL."""
    from dataclasses import replace

    sdk.config = replace(sdk.config, cache_spans=False, query_text=False)
    app, _ = make_app(sdk, tmp_path, cache=tiered_cache)
    await get(app, "/items/1")
    assert not [s for s in sdk.finished() if s.name.startswith("cache ")]
    assert sdk.points("perfkit.cache.operations")
    (sql,) = sdk.named("SELECT items")
    assert "db.query.text" not in (sql.attributes or {})


def test_bad_otel_setting_is_a_configuration_error(tmp_path: Path) -> None:
    """`otel=` takes True, False or an OtelConfig; anything else names the setting."""
    with pytest.raises(ConfigurationError, match="otel: must be True, False or an OtelConfig"):
        perfkit.instrument(Starlette(), collector=Collector(), monitor=False, otel="yes")  # type: ignore[arg-type]
    from perfkit.otel import OtelConfig

    with pytest.raises(ConfigurationError, match=r"otel\.cache_spans"):
        OtelConfig(cache_spans="no")  # type: ignore[arg-type]


def test_perfkit_otel_env_turns_it_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """`PERFKIT_OTEL=1` is the config key: instrument() wires perfkit.otel without `otel=`."""
    monkeypatch.setenv("PERFKIT_OTEL", "1")
    app = perfkit.instrument(Starlette(), collector=Collector(), monitor=False)
    assert app.state.perfkit.otel is not None
    monkeypatch.setenv("PERFKIT_OTEL", "0")
    assert perfkit.instrument(Starlette(), collector=Collector(), monitor=False).state.perfkit.otel is None
    assert os.environ["PERFKIT_OTEL"] == "0"
