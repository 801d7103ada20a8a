"""Streaming and SSE through the full stack under a real uvicorn on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn

import perfkit
from perfkit.metrics import Collector
from perfkit.web import WebConfig

from .conftest import make_starlette


@pytest.fixture
async def served() -> AsyncIterator[tuple[str, asyncio.Event]]:
    gate = asyncio.Event()
    app = perfkit.instrument(
        make_starlette(gate), config=WebConfig(rate_limit="1000/minute"), collector=Collector()
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:  # uvicorn exposes no awaitable for "listening"
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}", gate
    finally:
        server.should_exit = True
        await task
        sock.close()


@pytest.mark.parametrize(
    ("path", "accept"), [("/stream", "gzip"), ("/stream", "identity"), ("/events", "br")]
)
async def test_first_chunk_arrives_before_stream_ends(
    served: tuple[str, asyncio.Event], path: str, accept: str
) -> None:
    """The client reads the first chunk while the endpoint is still blocked: nothing buffers the stream."""
    base, gate = served
    async with (
        httpx.AsyncClient() as client,
        client.stream("GET", base + path, headers={"accept-encoding": accept}) as response,
    ):
        chunks = response.aiter_bytes()
        first = await asyncio.wait_for(chunks.__anext__(), timeout=5)
        assert first.startswith(b"first chunk") or first.startswith(b"data: one")
        gate.set()  # only now may the endpoint produce the rest
        rest = b"".join([c async for c in chunks])
    assert (first + rest).endswith(b"second chunk ") or (first + rest).endswith(b"data: two\n\n")
    assert "server-timing" in response.headers
    assert "etag" not in response.headers


async def test_sse_content_type_kept(served: tuple[str, asyncio.Event]) -> None:
    """SSE keeps its media type and is not compressed."""
    base, gate = served
    gate.set()
    async with httpx.AsyncClient() as client:
        response = await client.get(base + "/events", headers={"accept-encoding": "gzip"})
    assert response.headers["content-type"].startswith("text/event-stream")
    assert "content-encoding" not in response.headers
    assert response.text == "data: one\n\ndata: two\n\n"
