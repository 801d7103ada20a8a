"""Route resolution: labels are the full template (include prefixes, mounts), names match, 404 and 405
and slash redirects answer as the router does, and perfkit's answer is checked against the endpoint run.

The same probe runs on other FastAPI and Starlette releases in test_routing_matrix.py."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

import perfkit
from perfkit.metrics import Collector, current_request
from perfkit.web import Rule, WebConfig

from . import _routing_probe
from .conftest import requests

# (request, status, metrics label, route name, Cache-Control added by a rule by name)
FASTAPI_EXPECTED = [
    ("GET /api/v1/items/", 200, "/api/v1/items/", "read_items", None),
    ("GET /api/v1/items/3", 200, "/api/v1/items/{item_id}", "read_item", "max-age=60"),
    ("PUT /api/v1/items/3", 200, "/api/v1/items/{item_id}", "update_item", None),
    ("DELETE /api/v1/items/3", 405, "/api/v1/items/{item_id}", "read_item", None),
    ("GET /api/v1/items", 307, "/api/v1/items/", None, None),
    ("GET /api/v1/users/me", 200, "/api/v1/users/me", "me", None),
    ("GET /api/v1/admin/stats", 200, "/api/v1/admin/stats", "admin_stats", None),
    ("GET /health", 200, "/health", "health", None),
    ("GET /sub/v2/things/abc", 200, "/sub/v2/things/{tid}", "thing", None),
    ("GET /raw/any/thing", 200, "/raw/*", "raw", None),
    ("GET /dash @admin.example.com", 200, "/dash", "dash", "max-age=5"),
    ("GET /dash", 404, "<unmatched>", None, None),
    ("GET /nope", 404, "<unmatched>", None, None),
]
STARLETTE_EXPECTED = [
    ("GET /", 200, "/", "home", None),
    ("GET /api/v1/items/3", 200, "/api/v1/items/{item_id:int}", "item", "max-age=60"),
    ("POST /api/v1/items/3", 405, "/api/v1/items/{item_id:int}", "item", None),
    ("GET /api/v1/items/x", 404, "<unmatched>", None, None),
    ("GET /slash", 307, "/slash/", None, None),
    ("GET /dash @admin.example.com", 200, "/dash", "dash", "max-age=5"),
    ("GET /dash", 404, "<unmatched>", None, None),
    ("GET /raw/file.txt", 200, "/raw/*", "raw", None),
    ("GET /nope", 404, "<unmatched>", None, None),
]
EXPECTED = {"fastapi": FASTAPI_EXPECTED, "starlette": STARLETTE_EXPECTED}


def as_expected(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """The probe's rows in the shape of EXPECTED; every row must also agree with the endpoint run."""
    disagreeing = [row["request"] for row in rows if not row["agrees"]]
    assert not disagreeing, f"perfkit's route differs from the endpoint the app ran: {disagreeing}"
    return [(r["request"], r["status"], r["label"], r["name"], r["cache_control"]) for r in rows]


@pytest.mark.parametrize("kind", ["fastapi", "starlette"])
async def test_probe_on_installed_releases(kind: str) -> None:
    """On the installed FastAPI/Starlette: full templates with prefixes, names, 404, 405, redirects, Host."""
    assert as_expected(await _routing_probe.probe(kind)) == EXPECTED[kind]


def _included_app() -> FastAPI:
    router = APIRouter(prefix="/items")

    @router.get("/{item_id}")
    def read_item(item_id: int) -> dict[str, Any]:
        stats = current_request()
        return {"id": item_id, "route": stats.route if stats is not None else None}

    users = APIRouter(prefix="/users")

    @users.get("/me")
    def read_me() -> dict[str, str]:
        return {"user": "me"}

    api = APIRouter()
    api.include_router(router)
    api.include_router(users)
    app = FastAPI()
    app.include_router(api, prefix="/api/v1")
    return app


def test_request_stats_carry_the_full_template(collector: Collector) -> None:
    """The request's stats (what slow-query and N+1 findings report) name the prefixed template."""
    app = perfkit.instrument(_included_app(), collector=collector, monitor=False)
    body = TestClient(app).get("/api/v1/items/7").json()
    assert body == {"id": 7, "route": "/api/v1/items/{item_id}"}


def test_rate_limit_buckets_per_included_route(collector: Collector) -> None:
    """Each included route has its own rate-limit budget, not one shared "default" bucket."""
    config = WebConfig(rate_limit="1/minute")
    app = perfkit.instrument(_included_app(), config=config, collector=collector, monitor=False)
    client = TestClient(app)
    assert client.get("/api/v1/items/1").status_code == 200
    assert client.get("/api/v1/users/me").status_code == 200  # another route: another budget
    assert client.get("/api/v1/items/2").status_code == 429  # same template: the same budget


def test_disagreement_with_the_router_is_warned_once(caplog: pytest.LogCaptureFixture) -> None:
    """A middleware inside perfkit's stack that rewrites the path makes the app run another endpoint than
    perfkit resolved: perfkit says so, once per route."""

    async def item(request: Request) -> Response:
        return PlainTextResponse("item")

    class Rewrite:
        def __init__(self, app: Any) -> None:
            self.app = app

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http" and scope["path"].startswith("/old/"):
                scope["path"] = "/items/" + scope["path"][5:]
            await self.app(scope, receive, send)

    app = Starlette(routes=[Route("/items/{item_id}", item, name="item")])
    app.add_middleware(Rewrite)  # added before instrument(): inside perfkit's stack
    perfkit.instrument(app, collector=Collector(), monitor=False)
    client = TestClient(app)
    with caplog.at_level(logging.WARNING, logger="perfkit.web"):
        assert client.get("/old/1").status_code == 200
        assert client.get("/old/2").status_code == 200
        assert client.get("/items/3").status_code == 200
    warned = [r.getMessage() for r in caplog.records if "but the app ran endpoint" in r.getMessage()]
    assert len(warned) == 1
    assert "route <unmatched> (endpoint none) but the app ran endpoint" in warned[0]
    assert warned[0].split("ran endpoint ")[1].startswith(item.__qualname__)


def test_root_mount_of_an_app_without_routes(collector: Collector) -> None:
    """A catch-all `Mount("/", app=...)` (a single-page app's files) is labelled `/*` with its name."""

    async def spa(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"index"})

    async def api(request: Request) -> Response:
        return PlainTextResponse("api")

    app = Starlette(routes=[Route("/api", api, name="api"), Mount("/", app=spa, name="spa")])
    config = WebConfig(rules=[Rule(name="spa", cache_control="no-cache")])
    perfkit.instrument(app, config=config, collector=collector, monitor=False)
    client = TestClient(app)
    assert client.get("/app/page").headers["cache-control"] == "no-cache"
    assert client.get("/api").text == "api"
    assert set(requests(collector)) == {("GET", "/*", "2xx"), ("GET", "/api", "2xx")}
