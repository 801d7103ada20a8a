"""encode/broadcaster (redis backend) under Starlette: each WebSocket subscribes (`broadcast.subscribe`)
to the channels of `?channel=` and forwards every event; the load client publishes with
`broadcast.publish`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from broadcaster import Broadcast
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from realtime_peers._common import REDIS

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


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    async with broadcast:
        yield


app = Starlette(routes=[WebSocketRoute("/ws", ws)], lifespan=lifespan)
