"""perfkit's hub: `Hub(redis)` with its defaults (100 ms batching, 1500-message history), open to all.

`RT_BENCH_SETTINGS` (JSON) overrides Hub settings, e.g. `{"batch_window": 0}`. `RT_BENCH_GC_LOG=/tmp/x`
writes the cyclic GC's pauses per generation (count, total and longest ms) to /tmp/x.<pid> at shutdown."""

from __future__ import annotations

import gc
import json
import os
import time
from typing import Any

from perfkit.realtime import Hub
from realtime_peers._common import REDIS, Receive, Scope, Send

GC_LOG = os.environ.get("RT_BENCH_GC_LOG")  # a file: the cyclic GC's pauses of this process, at shutdown
pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
_started = [0.0]


def _gc(phase: str, info: dict[str, int]) -> None:
    if phase == "start":
        _started[0] = time.perf_counter()
    else:
        pauses[info["generation"]].append(time.perf_counter() - _started[0])


if GC_LOG:
    gc.callbacks.append(_gc)

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
            if GC_LOG:
                summary = {g: (len(p), round(sum(p) * 1000, 1), round(max(p, default=0) * 1000, 1))
                           for g, p in pauses.items()}  # fmt: skip
                with open(f"{GC_LOG}.{os.getpid()}", "w") as out:
                    out.write(json.dumps({"gc(count, total ms, max ms)": summary}))
            await send({"type": "lifespan.shutdown.complete"})
            return
