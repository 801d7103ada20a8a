"""perfkit's hub: `Hub(redis)` with its defaults (100 ms batching, 1500-message history), open to all.

`RT_BENCH_SETTINGS` (JSON) overrides Hub settings, e.g. `{"batch_window": 0}`."""

from __future__ import annotations

import json
import os
from typing import Any

from perfkit.realtime import Hub
from realtime_peers._common import REDIS, Receive, Scope, Send

hub = Hub(REDIS, prefix="bench:pk:", **json.loads(os.environ.get("RT_BENCH_SETTINGS", "{}")))
ws = hub.websocket(auth=None, can_subscribe=lambda user, channel: True, origins=["*"])


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "websocket":
        await ws(scope, receive, send)
    elif scope["type"] == "lifespan":
        await lifespan(receive, send)


async def lifespan(receive: Receive, send: Send) -> None:
    while True:
        message: dict[str, Any] = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await hub.close()
            await send({"type": "lifespan.shutdown.complete"})
            return
