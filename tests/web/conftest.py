"""Apps and helpers shared by the web-layer tests: real Starlette and FastAPI apps, a fresh collector."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import redis
from redis.asyncio.cluster import RedisCluster
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from perfkit.metrics import Collector

REDIS_URL = os.environ.get("PERFKIT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PAYLOAD = [{"id": i, "name": f"item {i}", "tags": ["a", "b"], "price": i * 1.5} for i in range(80)]


_FRAMEWORK = ["starlette"]


@pytest.fixture(params=["starlette", "fastapi"])
def framework(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run the test on a Starlette app and on a FastAPI app with the same routes."""
    _FRAMEWORK[0] = request.param
    yield request.param
    _FRAMEWORK[0] = "starlette"


def make_starlette(gate: asyncio.Event | None = None) -> Starlette:
    """The test app: plain Starlette, or FastAPI (a Starlette subclass with its own router and
    exception handling) when the `framework` fixture says so."""
    app = _make_starlette(gate)
    if _FRAMEWORK[0] == "fastapi":
        from fastapi import FastAPI

        return FastAPI(routes=app.routes)
    return app


# C901: one nested handler per route of the shared test app, each a line or two
def _make_starlette(gate: asyncio.Event | None = None) -> Starlette:  # noqa: C901
    async def hello(request: Request) -> Response:
        return PlainTextResponse("hello")

    async def items(request: Request) -> Response:
        return JSONResponse(PAYLOAD)

    async def item(request: Request) -> Response:
        return JSONResponse({"id": request.path_params["item_id"], "text": "x" * 1000})

    async def image(request: Request) -> Response:
        return Response(b"\x89PNG" + b"\0" * 4000, media_type="image/png")

    async def encoded(request: Request) -> Response:
        return Response(b"already" * 200, headers={"content-encoding": "gzip"}, media_type="text/plain")

    async def stream(request: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"first chunk " * 100
            if gate is not None:
                await gate.wait()  # the test releases this once it has read the first chunk
            yield b"second chunk " * 100

        return StreamingResponse(chunks(), media_type="text/plain")

    async def events(request: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"data: one\n\n"
            if gate is not None:
                await gate.wait()
            yield b"data: two\n\n"

        return StreamingResponse(chunks(), media_type="text/event-stream")

    async def boom(request: Request) -> Response:
        raise RuntimeError("boom")

    async def cookie(request: Request) -> Response:
        response = JSONResponse({"n": 1})
        response.set_cookie("session", "abc")
        return response

    async def dated(request: Request) -> Response:
        return PlainTextResponse("dated" * 200, headers={"last-modified": "Wed, 21 Oct 2015 07:28:00 GMT"})

    async def own_cache(request: Request) -> Response:
        return PlainTextResponse("mine", headers={"cache-control": "no-store"})

    async def echo(request: Request) -> Response:
        return JSONResponse({"body": (await request.body()).decode()})

    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("hi " + await websocket.receive_text())
        await websocket.close()

    return Starlette(
        routes=[
            Route("/", hello, name="hello"),
            Route("/items", items, name="items"),
            Route("/items/{item_id}", item, name="item"),
            Route("/image", image),
            Route("/encoded", encoded),
            Route("/stream", stream),
            Route("/events", events),
            Route("/boom", boom),
            Route("/cookie", cookie),
            Route("/dated", dated),
            Route("/own-cache", own_cache),
            Route("/echo", echo, methods=["POST"]),
            Route("/static/{path:path}", items, name="static"),
            WebSocketRoute("/ws", ws),
        ]
    )


@pytest.fixture
def collector() -> Collector:
    return Collector()


def series(collector: Collector, name: str) -> dict[tuple[str, ...], Any]:
    family = collector.families.get(name)
    return dict(getattr(family, "series", {})) if family is not None else {}


def as_json(body: bytes) -> Any:
    return json.loads(body)


Factory = Callable[..., Starlette]


def requests(collector: Collector) -> dict[tuple[str, ...], float]:
    """Requests per (method, route, status class): the count of the latency histogram."""
    rows = series(collector, "http_request_duration_seconds") if collector.families else {}
    return {labels: float(sum(row[:-1])) for labels, row in rows.items()}


@pytest.fixture
def prefix() -> Iterator[str]:
    """A unique key prefix per test; its keys are deleted afterwards."""
    value = f"perfkit:test:{uuid.uuid4().hex}:"
    yield value
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=value + "*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
async def cluster_prefix(raw_cluster: RedisCluster) -> AsyncIterator[str]:
    """`prefix` on the Redis Cluster: its keys are found on every primary and deleted afterwards."""
    value = f"perfkit:test:{uuid.uuid4().hex}:"
    yield value
    for key in [key async for key in raw_cluster.scan_iter(match=value + "*")]:  # SCAN on every primary
        await raw_cluster.delete(key)
