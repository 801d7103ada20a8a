"""Per-method figures: one route template, three methods, three different numbers of queries."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import String, create_engine, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import perfkit
from perfkit.db import uninstrument_engine
from perfkit.metrics import Collector
from perfkit.monitor import MonitorConfig, recommend
from perfkit.monitor.config import Budgets

from .conftest import AUTH, TOKEN

_QUERIES = re.compile(r'db;dur=[\d.]+;desc="(\d+) queries"')


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "per_method_items"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(50))


def make_app(engine: Any) -> FastAPI:
    """GET /items/{id} runs 2 queries, PUT 4, DELETE 3 (what the FastAPI template's routes do)."""
    app = FastAPI()

    @app.get("/items/{item_id}")
    def read_item(item_id: int) -> dict[str, Any]:
        with Session(engine) as session:
            session.execute(text("SELECT 1"))  # the auth lookup
            item = session.get(Item, item_id)
            return {"id": item_id, "title": item.title if item else None}

    @app.put("/items/{item_id}")
    def update_item(item_id: int) -> dict[str, Any]:
        with Session(engine) as session:
            session.execute(text("SELECT 1"))
            item = session.scalars(select(Item).where(Item.id == item_id)).one()
            item.title = f"t{item_id}!"
            session.commit()  # the UPDATE
            session.refresh(item)  # and the SELECT after it
            return {"id": item_id, "title": item.title}

    @app.delete("/items/{item_id}")
    def delete_item(item_id: int) -> dict[str, Any]:
        with Session(engine) as session:
            session.execute(text("SELECT 1"))
            session.execute(text("SELECT count(*) FROM per_method_items WHERE id = :id"), {"id": item_id})
            session.execute(text("SELECT title FROM per_method_items WHERE id = :id"), {"id": item_id})
            return {"deleted": item_id}

    return app


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    engine = create_engine(f"sqlite:///{tmp_path}/items.db")
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        session.add_all([Item(id=i, title=f"t{i}") for i in range(1, 6)])
        session.commit()
    budgets = Budgets(queries_per_request=3)
    app = perfkit.instrument(
        make_app(engine), engine=engine, collector=Collector(),
        monitor=MonitorConfig(token=TOKEN, url="memory://", budgets=budgets),
    )  # fmt: skip
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
    yield http, app
    await http.aclose()
    await app.state.perfkit.close()
    uninstrument_engine(engine)
    engine.dispose()


async def test_report_queries_per_request_equal_server_timing(
    client: tuple[httpx.AsyncClient, Any],
) -> None:
    """Per METHOD /template, the report's queries per request equal the mean of Server-Timing's counts."""
    http, _app = client
    said: dict[str, list[int]] = {"GET": [], "PUT": [], "DELETE": []}
    plan = [("GET", i) for i in (1, 2, 3, 4, 5, 1, 2)] + [("PUT", i) for i in (1, 2)] + [("DELETE", 3)]
    for method, item in plan:
        response = await http.request(method, f"/items/{item}")
        assert response.status_code == 200, response.text
        match = _QUERIES.search(response.headers["server-timing"])
        assert match is not None, response.headers["server-timing"]
        said[method].append(int(match.group(1)))
    assert {m: set(v) for m, v in said.items()} == {"GET": {2}, "PUT": {4}, "DELETE": {3}}
    report = (await http.get("/perf/report", headers=AUTH)).json()
    for method, counts in said.items():
        route = report["routes"][f"{method} /items/{{item_id}}"]
        assert route["requests"] == len(counts)
        assert route["db_queries_per_request"] == round(sum(counts) / len(counts), 2)
    total = sum(sum(c) for c in said.values())
    assert report["kpis"]["requests"]["db_queries_per_request"] == round(total / len(plan), 2)
    messages = [r["message"] for r in report["recommendations"] if r["kind"] == "queries"]
    assert messages == ["PUT /items/{item_id} runs 4 queries per request (budget 3)"]


async def test_prometheus_db_counters_carry_the_method(client: tuple[httpx.AsyncClient, Any]) -> None:
    """`http_db_queries_total` is labelled by method and route: one series per METHOD /template."""
    http, _app = client
    for method in ("GET", "PUT", "DELETE"):
        assert (await http.request(method, "/items/1")).status_code == 200
    body = (await http.get("/perf/metrics", headers=AUTH)).text
    for method, n in (("GET", 2), ("PUT", 4), ("DELETE", 3)):
        line = f'perfkit_http_db_queries_total{{method="{method}",route="/items/{{item_id}}"}} {float(n)}'
        assert line in body.splitlines(), body


@pytest.mark.parametrize(
    ("value", "budget", "text"),
    [(10.48, 10, "10.5"), (11, 10, "11"), (10.04, 10, "10.04"), (1234.4, 1000, "1234"), (10.0, 10, "10")],
)
def test_figures_never_print_as_their_budget(value: float, budget: float, text: str) -> None:
    """A figure over its budget keeps the decimals that tell it apart: 10.48 is "10.5", not "10"."""
    assert recommend.figure(value, budget) == text
