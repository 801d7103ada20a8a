"""The few ASGI pieces the image endpoint needs (it is plain ASGI, and needs no web extra)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["Receive", "Scope", "Send", "header", "lifespan"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first request header called `name` (lower-case bytes), or None."""
    for key, value in scope.get("headers") or ():
        if key == name:
            return bytes(value)
    return None


async def lifespan(receive: Receive, send: Send) -> None:
    """Answer the lifespan protocol when the service is served on its own (nothing to start)."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
