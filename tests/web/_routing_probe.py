"""What perfkit resolves for a fixed set of requests on apps shaped like real ones, as JSON.

Imported by tests/web/test_routing.py (the installed FastAPI and Starlette) and run as a script by
tests/web/test_routing_matrix.py inside virtual environments holding other releases, so it uses only
what every supported release has: no TestClient (no httpx), the ASGI app called directly.
`python _routing_probe.py fastapi|starlette` prints {"versions": ..., "results": [...]}.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Host, Mount, Route, Router

from perfkit.metrics import Collector
from perfkit.web import Rule, WebConfig
from perfkit.web.instrument import instrument
from perfkit.web.routing import SCOPE_KEY

# (method, path, host): the requests each app answers
FASTAPI_REQUESTS = [
    ("GET", "/api/v1/items/", None),
    ("GET", "/api/v1/items/3", None),
    ("PUT", "/api/v1/items/3", None),
    ("DELETE", "/api/v1/items/3", None),  # 405
    ("GET", "/api/v1/items", None),  # redirect to /api/v1/items/
    ("GET", "/api/v1/users/me", None),
    ("GET", "/api/v1/admin/stats", None),
    ("GET", "/health", None),
    ("GET", "/sub/v2/things/abc", None),
    ("GET", "/raw/any/thing", None),
    ("GET", "/dash", "admin.example.com"),
    ("GET", "/dash", None),  # the Host route is for another host: 404
    ("GET", "/nope", None),
]
STARLETTE_REQUESTS = [
    ("GET", "/", None),
    ("GET", "/api/v1/items/3", None),
    ("POST", "/api/v1/items/3", None),  # 405
    ("GET", "/api/v1/items/x", None),  # the int convertor refuses it: 404 inside the mount
    ("GET", "/slash", None),  # redirect to /slash/
    ("GET", "/dash", "admin.example.com"),
    ("GET", "/dash", None),
    ("GET", "/raw/file.txt", None),
    ("GET", "/nope", None),
]
RULES = [
    Rule(name="read_item", cache_control="max-age=60"),
    Rule(name="item", cache_control="max-age=60"),
    Rule(name="dash", cache_control="max-age=5"),
]


async def _raw(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"raw"})


async def _text(request: Request) -> Response:
    return PlainTextResponse(request.url.path)


def fastapi_app() -> Any:
    """Routers nested three deep under `include_router(api, prefix="/api/v1")`, a mounted FastAPI app
    with its own included router, a mounted plain ASGI app and a Host route."""
    from fastapi import APIRouter, FastAPI

    items = APIRouter(prefix="/items", tags=["items"])

    @items.get("/")
    def read_items() -> list[int]:
        return []

    @items.get("/{item_id}")
    def read_item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @items.put("/{item_id}")
    def update_item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    users = APIRouter()

    @users.get("/users/me", name="me")
    def read_me() -> dict[str, str]:
        return {"user": "me"}

    admin = APIRouter(prefix="/admin")

    @admin.get("/stats")
    def admin_stats() -> dict[str, int]:
        return {"n": 1}

    users.include_router(admin)
    api = APIRouter()
    api.include_router(items)
    api.include_router(users)
    app = FastAPI()

    @app.get("/health")
    def health() -> dict[str, bool]:
        return {"ok": True}

    app.include_router(api, prefix="/api/v1")
    sub = FastAPI()
    things = APIRouter()

    @things.get("/things/{tid}")
    def thing(tid: str) -> dict[str, str]:
        return {"tid": tid}

    sub.include_router(things, prefix="/v2")
    app.mount("/sub", sub)
    app.mount("/raw", _raw, name="raw")
    app.host("admin.example.com", Router([Route("/dash", _text, name="dash")]), name="admin")
    return app


def starlette_app() -> Starlette:
    """Nested mounts with names, a convertor, a trailing-slash route, a Host route, a mounted ASGI app."""
    v1 = Mount("/v1", routes=[Route("/items/{item_id:int}", _text, name="item", methods=["GET"])], name="v1")
    return Starlette(
        routes=[
            Route("/", _text, name="home"),
            Mount("/api", routes=[v1], name="api"),
            Route("/slash/", _text, name="slash"),
            Host("admin.example.com", app=Router([Route("/dash", _text, name="dash")]), name="admin"),
            Mount("/raw", app=_raw, name="raw"),
        ]
    )


class _Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


async def _call(app: Any, method: str, path: str, host: str | None) -> tuple[int, dict[str, str], Any]:
    scope: dict[str, Any] = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(b"host", (host or "testserver").encode())], "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
    }  # fmt: skip
    start: dict[str, Any] = {}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            start.update(message)

    await app(scope, receive, send)
    headers = {k.decode().lower(): v.decode() for k, v in start.get("headers", ())}
    return start["status"], headers, scope.get(SCOPE_KEY)


def _counts(collector: Collector) -> dict[tuple[str, ...], float]:
    family = collector.families.get("http_request_duration_seconds")
    rows = getattr(family, "series", {})
    return {labels: sum(row[:-1]) for labels, row in rows.items()}


async def probe(kind: str) -> list[dict[str, Any]]:
    """One row per request: status, the metrics label, the resolved name, the Cache-Control the rule by
    name added, and whether perfkit's answer disagreed with the endpoint the app ran."""
    app = fastapi_app() if kind == "fastapi" else starlette_app()
    collector = Collector()
    app = instrument(app, collector=collector, config=WebConfig(rules=RULES), monitor=False)
    warnings = _Warnings()
    logger = logging.getLogger("perfkit.web")
    logger.addHandler(warnings)
    rows = []
    try:
        for method, path, host in FASTAPI_REQUESTS if kind == "fastapi" else STARLETTE_REQUESTS:
            before = _counts(collector)
            seen = len(warnings.messages)
            status, headers, info = await _call(app, method, path, host)
            after = _counts(collector)
            labels = [labels for labels, n in after.items() if n != before.get(labels, 0)]
            rows.append({
                "request": f"{method} {path}" + (f" @{host}" if host else ""),
                "status": status,
                "label": labels[0][1] if len(labels) == 1 else labels,
                "name": getattr(info, "name", None),
                "cache_control": headers.get("cache-control"),
                "agrees": len(warnings.messages) == seen,
            })  # fmt: skip
    finally:
        logger.removeHandler(warnings)
    return rows


def versions() -> dict[str, str | None]:
    import starlette

    try:
        import fastapi
    except ImportError:
        return {"starlette": starlette.__version__, "fastapi": None}
    return {"starlette": starlette.__version__, "fastapi": fastapi.__version__}


if __name__ == "__main__":
    print(json.dumps({"versions": versions(), "results": asyncio.run(probe(sys.argv[1]))}))
