"""The floor for (a): a raw ASGI WebSocket that accepts and waits for the client to leave, no library.
What uvicorn and its WebSocket protocol cost per connection; a library's own cost is what it adds."""

from __future__ import annotations

from realtime_peers._common import Receive, Scope, Send


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "websocket":
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while (await receive())["type"] != "websocket.disconnect":
        pass
