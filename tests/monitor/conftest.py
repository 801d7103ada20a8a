"""A real Starlette app with a database, a cache and a job queue, instrumented with the monitor."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import ForeignKey, String, create_engine, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

import perfkit
from perfkit import Cache, JobQueue
from perfkit.db import instrument_engine, uninstrument_engine
from perfkit.db.config import DbConfig
from perfkit.metrics import Collector
from perfkit.monitor import Monitor, MonitorConfig
from perfkit.web import Rule, WebConfig
from tests.conftest import free_port

from ..conftest import eventually

TOKEN = "s3cret-token-for-tests"
AUTH = {"authorization": f"Bearer {TOKEN}"}
SECRET_PARAM = "hunter2-param-value"


class Base(DeclarativeBase):
    pass


class Ticket(Base):
    __tablename__ = "tickets"
    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[str] = mapped_column(String(20))
    comments: Mapped[list[Comment]] = relationship()


class Comment(Base):
    __tablename__ = "comments"
    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey(Ticket.id))
    body: Mapped[str] = mapped_column(String(100))


def make_app(engine: Any, cache: Cache) -> Starlette:
    async def tickets(request: Request) -> Response:
        with Session(engine) as session:  # N+1: one lazy load of comments per ticket
            rows = session.scalars(select(Ticket)).all()
            return JSONResponse([{"id": t.id, "comments": len(t.comments)} for t in rows])

    async def stats(request: Request) -> Response:
        with engine.connect() as conn:  # 11 queries where one aggregate would do
            counts = [conn.execute(text("SELECT count(*) FROM tickets WHERE id > :n"), {"n": i}).scalar()
                      for i in range(11)]  # fmt: skip
        return JSONResponse({"counts": counts})

    async def search(request: Request) -> Response:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT id FROM tickets WHERE status = :status"), {"status": SECRET_PARAM}
            ).all()
        return JSONResponse({"n": len(rows)})

    async def cached(request: Request) -> Response:
        key = request.query_params.get("k", "a")
        value = await cache.get_or_set(key, lambda: {"k": key}, ttl=60)
        return JSONResponse(value)

    async def big(request: Request) -> Response:
        return JSONResponse({"text": "x" * 3000})

    async def boom(request: Request) -> Response:
        return PlainTextResponse("broken", status_code=500)

    return Starlette(routes=[
        Route("/tickets", tickets), Route("/tickets/stats", stats), Route("/search", search),
        Route("/cached", cached), Route("/big", big), Route("/boom", boom),
    ])  # fmt: skip


@dataclass
class Env:
    app: Any
    monitor: Monitor
    collector: Collector
    engine: Any
    cache: Cache
    jobs: JobQueue
    client: httpx.AsyncClient
    tmp: Path


def seed(engine: Any) -> None:
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        for i in range(1, 6):
            session.add(
                Ticket(id=i, status="open", comments=[Comment(id=i * 10 + j, body="c") for j in range(2)])
            )
        session.commit()


EnvFactory = Callable[..., Any]


@pytest.fixture
async def make_env(tmp_path: Path) -> AsyncIterator[EnvFactory]:
    """Builds instrumented apps (SQLite db, memory cache, SQLite jobs, SQLite monitor store); cleans up."""
    made: list[Env] = []

    async def make(**config: Any) -> Env:
        engine = create_engine(f"sqlite:///{tmp_path}/app.db")
        seed(engine)
        collector = Collector()
        instrument_engine(engine, config=DbConfig(slow_query=1e-9, explain=True), collector=collector)
        cache = Cache("memory://", namespace="tickets")
        jobs = JobQueue(f"sqlite:///{tmp_path}/jobs.db")
        config.setdefault("token", TOKEN)
        config.setdefault("url", f"sqlite:///{tmp_path}/monitor.db")
        web = config.pop("web", None) or WebConfig(rules=[Rule(path="/big", compress=False)])
        app = perfkit.instrument(
            make_app(engine, cache), cache=cache, jobs=jobs, engine=engine, collector=collector,
            config=web, monitor=MonitorConfig(**config),
        )  # fmt: skip
        monitor = app.state.perfkit.monitor
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
        env = Env(app, monitor, collector, engine, cache, jobs, client, tmp_path)
        made.append(env)
        return env

    yield make
    for env in made:
        await env.client.aclose()
        await env.monitor.close()
        await env.jobs.close()
        await env.cache.close()
        uninstrument_engine(env.engine)
        env.engine.dispose()


@pytest.fixture
async def env(make_env: EnvFactory) -> Env:
    result: Env = await make_env()
    return result


@asynccontextmanager
async def serve(app: Any) -> AsyncIterator[str]:
    """Serve `app` with uvicorn (lifespan on) on 127.0.0.1 in this event loop; yields the base URL."""
    import uvicorn

    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        if task.done():
            raise AssertionError(f"uvicorn stopped: {task.exception()!r}")
        return bool(server.started)

    await eventually(started, timeout=10, what="uvicorn started")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)
