"""encode/broadcaster (redis backend) under Starlette: each WebSocket subscribes (`broadcast.subscribe`)
to the channels of `?channel=` and forwards every event; a publish is `broadcast.publish`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from broadcaster import Broadcast
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from realtime_peers._http import REDIS

broadcast = Broadcast(REDIS)


async def forward(websocket: WebSocket, subscriber: Any) -> None:
    async for event in subscriber:
        await websocket.send_text(event.message)


async def ws(websocket: WebSocket) -> None:
    await websocket.accept()
    async with AsyncExitStack() as stack:
        subscribers = [
            await stack.enter_async_context(broadcast.subscribe(channel))
            for channel in websocket.query_params.getlist("channel")
        ]
        tasks = [asyncio.create_task(forward(websocket, s)) for s in subscribers]
        try:
            while (await websocket.receive())["type"] != "websocket.disconnect":
                pass
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def publish(request: Request) -> PlainTextResponse:
    body = await request.json()
    for data in body["many"]:
        await broadcast.publish(body["channel"], json.dumps(data))
    return PlainTextResponse("ok")


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    async with broadcast:
        yield


app = Starlette(
    routes=[WebSocketRoute("/ws", ws), Route("/publish", publish, methods=["POST"])], lifespan=lifespan
)
