"""The `POST /publish` body and the `?channel=` query every peer server reads alike."""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

REDIS = os.environ.get("RT_BENCH_REDIS", "redis://127.0.0.1:6379/14")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def channels_of(scope: Scope) -> list[str]:
    return parse_qs(scope.get("query_string", b"").decode("latin-1")).get("channel", [])


async def read_body(receive: Receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def publish_endpoint(
    scope: Scope, receive: Receive, send: Send, publish: Callable[[str, Any], Awaitable[Any]]
) -> None:
    """A raw ASGI handler for `POST /publish`: each of `many` through `publish(channel, data)`."""
    body = json.loads(await read_body(receive))
    for data in body["many"]:
        await publish(body["channel"], data)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})
