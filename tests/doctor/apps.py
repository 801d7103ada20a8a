"""The apps `perfkit doctor` is tested on: one page, a static asset, a cached read; bare or configured."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

import perfkit
from perfkit.metrics import Collector
from perfkit.monitor import MonitorConfig
from perfkit.web import Rule, WebConfig

TOKEN = "doctor-test-token"
PAGE = (
    "<html><head><script src='/static/app.js'></script></head><body>"
    + "<p>hello</p>" * 200
    + "</body></html>"
)


def make_app(engine: Any = None, cache: Any = None) -> Starlette:
    async def page(request: Request) -> Response:
        if engine is not None:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        return HTMLResponse(PAGE)

    async def asset(request: Request) -> Response:
        return Response("console.log('hi');" * 100, media_type="application/javascript")

    async def cached(request: Request) -> Response:
        value = await cache.get_or_set("k", lambda: {"v": 1}, ttl=60) if cache is not None else {"v": 1}
        return JSONResponse(value)

    return Starlette(routes=[Route("/", page), Route("/static/app.js", asset), Route("/cached", cached)])


GOOD_WEB = WebConfig(
    etag=True,
    rate_limit="10000/minute",
    rules=[Rule(path="/static/*", cache_control="public, max-age=31536000, immutable")],
)


def good(engine: Any, cache: Any, jobs: Any, store_url: str) -> Any:
    """Everything the checklist asks for: compression, ETags, static caching, rate limits, a protected
    monitor with a PostgreSQL engine, a Redis cache and a job queue behind its readiness."""
    return perfkit.instrument(
        make_app(engine, cache), engine=engine, cache=cache, jobs=jobs, config=GOOD_WEB,
        monitor=MonitorConfig(token=TOKEN, url=store_url),
        collector=Collector(),  # its own: the process collector holds other tests' findings and hit ratios
    )  # fmt: skip


bare = make_app()  # `perfkit doctor --app tests.doctor.apps:bare`: nothing of perfkit
# instrumented with defaults but the monitor opened to anyone (metrics included)
open_monitor = perfkit.instrument(make_app(), monitor=MonitorConfig(open=True, url="memory://"))
