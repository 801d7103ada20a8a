"""The app the real-time tests serve with uvicorn: a hub, its two endpoints, and routes to publish and
to look inside the server (connections, subscriptions, queues, metrics). `build()` makes one (servers
in a thread of the test process); `from_environment` is uvicorn's `--factory` for server processes:

    RT_URL       the broker URL (memory:// or redis://...)
    RT_SETTINGS  JSON of Hub settings (batch_window, heartbeat, queue_size, ...)
    RT_ORIGINS   JSON list of allowed origins (unset: same origin only)

auth: `?token=<name>` or `Authorization: Bearer <name>` is the user <name>; "nobody" (or none) refuses.
can_subscribe: `secret:*` never, `user:<name>` only for <name>, the rest for anyone.
can_publish: `chat:*` only.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute

from perfkit.metrics import Collector, Histogram
from perfkit.realtime import Hub


def current_user(conn: HTTPConnection) -> str | None:
    token = conn.query_params.get("token") or conn.headers.get("authorization", "").removeprefix("Bearer ")
    return token if token and token != "nobody" else None


async def may_subscribe(user: Any, channel: str) -> bool:
    if channel.startswith("secret:"):
        return False
    if channel.startswith("user:"):
        return bool(channel == f"user:{user}")
    return True


def may_publish(user: Any, channel: str) -> bool:
    return channel.startswith("chat:")


def build(url: str, settings: dict[str, Any], origins: list[str] | None) -> Starlette:
    """The app around a hub of its own (and a collector of its own, for in-thread servers)."""
    hub = Hub(url, collector=Collector(), **settings)

    async def publish(request: Request) -> JSONResponse:
        body = await request.json()
        positions = [
            await hub.publish(body["channel"], data) for data in body.get("many", [body.get("data")])
        ]
        return JSONResponse({"epoch": positions[-1].epoch, "offsets": [p.offset for p in positions]})

    async def stats(request: Request) -> JSONResponse:
        rt = hub.runtime
        conns = list(hub.connections)
        return JSONResponse(
            {
                "connections": len(conns),
                "channels": sorted(rt.fanout.channels),
                "subscribers": {c: len(s.subscribers) for c, s in rt.fanout.channels.items()},
                "max_queue": max((len(c.queue) for c in conns), default=0),
                "writers": sum(1 for c in conns if c.writer is not None),
                "tasks": len(asyncio.all_tasks()),
                "rtt": [c.rtt for c in conns],
                "dropped": {k[0]: v for k, v in hub.metrics.dropped.series.items()},
                "closed": {k[0]: v for k, v in hub.metrics.closed.series.items()},
                "pid": os.getpid(),
            }
        )

    async def metrics(request: Request) -> JSONResponse:
        """The collector's realtime_* families: counters and gauges per label set, histograms' count, p99."""
        found: dict[str, Any] = {}
        for name, family in hub.collector.families.items():
            if not name.startswith("realtime_"):
                continue
            if isinstance(family, Histogram):
                found[name] = {"count": family.count(), "p99": family.quantile(0.99)}
            else:
                found[name] = {",".join(k): v for k, v in family.series.items()}  # type: ignore[attr-defined]
        return JSONResponse(found)

    async def health(request: Request) -> JSONResponse:
        result = await hub.check()()
        return JSONResponse({"status": result.status, "message": result.message, **result.details})

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await hub.close()

    return Starlette(
        routes=[
            WebSocketRoute("/ws", hub.websocket(auth=current_user, can_subscribe=may_subscribe,
                                                can_publish=may_publish, origins=origins)),
            Route("/events", hub.sse(auth=current_user, can_subscribe=may_subscribe, origins=origins)),
            Route("/publish", publish, methods=["POST"]),
            Route("/stats", stats),
            Route("/health", health),
            Route("/metrics", metrics),
        ],
        lifespan=lifespan,
    )  # fmt: skip


def from_environment() -> Starlette:
    origins = json.loads(os.environ["RT_ORIGINS"]) if os.environ.get("RT_ORIGINS") else None
    return build(
        os.environ.get("RT_URL", "memory://"), json.loads(os.environ.get("RT_SETTINGS", "{}")), origins
    )
