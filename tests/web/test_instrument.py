"""perfkit.instrument(): the whole stack on Starlette, FastAPI and plain ASGI apps."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import zstandard
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.testclient import TestClient

import perfkit
from perfkit.metrics import Collector, Counter, Histogram
from perfkit.web import Rule, WebConfig

from .conftest import make_starlette, requests


def test_starlette_full_stack(collector: Collector) -> None:
    """On a Starlette app every layer answers: timing, metrics, compression, ETag, Cache-Control."""
    config = WebConfig(
        rules=[Rule(path="/items", cache_control="public, max-age=60")], rate_limit="1000/minute"
    )
    app = perfkit.instrument(make_starlette(), config=config, collector=collector)
    c = TestClient(app)
    response = c.get("/items", headers={"accept-encoding": "gzip"})
    assert response.status_code == 200
    h = response.headers
    assert h["content-encoding"] == "gzip"
    assert h["etag"].endswith('-gzip"')
    assert h["cache-control"] == "public, max-age=60"
    assert "server-timing" in h
    assert "x-request-id" in h
    assert "ratelimit" in h
    again = c.get("/items", headers={"accept-encoding": "gzip", "if-none-match": h["etag"]})
    assert again.status_code == 304
    assert requests(collector)[("GET", "/items", "2xx")] == 1
    assert requests(collector)[("GET", "/items", "3xx")] == 1
    assert app.state.perfkit.collector is collector


def test_fastapi_route_templates(collector: Collector) -> None:
    """FastAPI path parameters are labelled by template and route-name rules apply."""
    api = FastAPI()

    @api.get("/users/{user_id}", name="user")
    async def user(user_id: int) -> dict[str, Any]:
        return {"id": user_id, "bio": "x" * 2000}

    config = WebConfig(rules=[Rule(name="user", cache_control="private, no-cache")])
    perfkit.instrument(api, config=config, collector=collector)
    c = TestClient(api)
    for i in range(3):
        response = c.get(f"/users/{i}", headers={"accept-encoding": "br"})
        assert response.json()["id"] == i
    assert response.headers["content-encoding"] == "br"
    assert response.headers["cache-control"] == "private, no-cache"
    assert requests(collector) == {("GET", "/users/{user_id}", "2xx"): 3.0}


def test_plain_asgi_callable(collector: Collector) -> None:
    """A bare ASGI callable is wrapped and the wrapper exposes .perfkit."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
        )
        await send({"type": "http.response.body", "body": b"plain " * 200})

    config = WebConfig(route_name=lambda scope: "plain")
    wrapped = perfkit.instrument(app, config=config, collector=collector)
    with TestClient(wrapped).stream("GET", "/anything/123", headers={"accept-encoding": "zstd"}) as response:
        body = b"".join(response.iter_raw())
    assert response.headers["content-encoding"] == "zstd"
    assert zstandard.ZstdDecompressor().decompress(body) == b"plain " * 200
    assert wrapped.perfkit.collector is collector
    assert requests(collector) == {("GET", "plain", "2xx"): 1.0}


def test_websocket_and_lifespan_pass_through(collector: Collector) -> None:
    """Websocket and lifespan scopes reach the app untouched through the whole stack."""
    events: list[str] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        events.append("startup")
        yield
        events.append("shutdown")

    app = Starlette(routes=make_starlette().routes, lifespan=lifespan)
    perfkit.instrument(app, config=WebConfig(rate_limit="1/minute"), collector=collector)
    with TestClient(app) as c, c.websocket_connect("/ws") as ws:
        ws.send_text("you")
        assert ws.receive_text() == "hi you"
    assert events == ["startup", "shutdown"]
    assert not requests(collector)


def test_excluded_paths_bypass_stack(collector: Collector) -> None:
    """Excluded path patterns skip every layer (no headers, no metrics)."""
    app = perfkit.instrument(make_starlette(), config=WebConfig(exclude=["/items*"]), collector=collector)
    response = TestClient(app).get("/items")
    assert "server-timing" not in response.headers
    assert "etag" not in response.headers
    assert not requests(collector)


def test_import_has_no_side_effects() -> None:
    """`import perfkit` imports neither starlette nor sqlalchemy; `perfkit.instrument` loads lazily."""
    code = (
        "import sys, perfkit; assert 'starlette' not in sys.modules and 'sqlalchemy' not in sys.modules;"
        "f = perfkit.instrument; print(f.__module__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "perfkit.instrument"


async def _run_one_job(jobs: Any) -> None:
    @jobs.task(queue="mail", name="send_mail")
    async def send_mail(ctx: Any, to: str) -> str:
        return to

    await send_mail.enqueue("a@example.org")
    await jobs.worker(burst=True).run()


@pytest.mark.sqlite
@pytest.mark.parametrize("monitor", [False, None])
async def test_instrument_feeds_job_events_to_the_collector(tmp_path: Path, monitor: Any) -> None:
    """instrument(jobs=JobQueue) counts the queue's events in the collector once, monitor or not."""
    from perfkit.jobs import JobQueue

    jobs = JobQueue(f"sqlite:///{tmp_path}/jobs.db")
    collector = Collector()
    app = perfkit.instrument(make_starlette(), jobs=jobs, collector=collector, monitor=monitor)
    perfkit.instrument(make_starlette(), jobs=jobs, collector=collector, monitor=False)  # a second app
    try:
        await _run_one_job(jobs)
    finally:
        await jobs.close()
        with contextlib.suppress(AttributeError):  # the monitor's store, when one was mounted
            await app.state.perfkit.close()
    events = collector.families["jobs_events_total"]
    assert isinstance(events, Counter) and events.series == {
        ("mail", "enqueued"): 1.0,
        ("mail", "started"): 1.0,
        ("mail", "succeeded"): 1.0,
    }
    runs = collector.families["jobs_run_seconds"]
    assert isinstance(runs, Histogram) and runs.count(("mail", "send_mail")) == 1


def _counted(engine: Any) -> int:
    """How many statements perfkit counts for one `SELECT 1` on `engine` (0: no hooks on it)."""
    from sqlalchemy import text

    from perfkit.db import track

    with engine.connect() as conn, track() as stats:
        conn.execute(text("SELECT 1"))
    return stats.db_count


@pytest.mark.sqlite
async def test_close_uninstruments_the_engine_instrument_instrumented(tmp_path: Path) -> None:
    """instrument(app, engine=e) put the query hooks on e: its handle's close() takes them off."""
    from sqlalchemy import create_engine

    engine = create_engine(f"sqlite:///{tmp_path}/a.db")
    app = perfkit.instrument(make_starlette(), engine=engine, collector=Collector(), monitor=False)
    assert _counted(engine) == 1
    await app.state.perfkit.close()
    assert _counted(engine) == 0
    engine.dispose()


@pytest.mark.sqlite
async def test_two_instrument_calls_on_one_engine_each_count_until_their_own_close(tmp_path: Path) -> None:
    """Two instrument() calls sharing an engine: closing one (twice, even) leaves the other counting;
    the engine's hooks come off when the last one closes."""
    from sqlalchemy import create_engine, event

    from perfkit.db import is_instrumented

    engine = create_engine(f"sqlite:///{tmp_path}/c.db")
    first = perfkit.instrument(make_starlette(), engine=engine, collector=Collector(), monitor=False)
    second = perfkit.instrument(make_starlette(), engine=engine, collector=Collector(), monitor=False)
    hooks = first.state.perfkit.engine_hooks.hooks
    await first.state.perfkit.close()
    await first.state.perfkit.close()
    assert _counted(engine) == 1 and is_instrumented(engine)
    await second.state.perfkit.close()
    assert _counted(engine) == 0 and not is_instrumented(engine)
    assert not event.contains(engine, "after_cursor_execute", hooks.after)
    engine.dispose()


@pytest.mark.sqlite
async def test_close_leaves_the_hooks_of_an_engine_instrumented_before(tmp_path: Path) -> None:
    """An engine the application instrumented itself first keeps its hooks (and collector) after close()."""
    from sqlalchemy import create_engine

    from perfkit.db import instrument_engine, uninstrument_engine

    engine = create_engine(f"sqlite:///{tmp_path}/b.db")
    mine = Collector()
    instrument_engine(engine, collector=mine)
    app = perfkit.instrument(make_starlette(), engine=engine, collector=Collector(), monitor=False)
    await app.state.perfkit.close()
    assert _counted(engine) == 1
    latency = mine.families["db_query_duration_seconds"]
    assert isinstance(latency, Histogram) and latency.count(("SELECT",)) == 1
    uninstrument_engine(engine)
    engine.dispose()
