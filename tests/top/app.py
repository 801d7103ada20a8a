"""The app `perfkit top` watches in its tests: fast, slow and failing routes, a cache, a job queue.

Served by uvicorn in a subprocess (`uvicorn tests.top.app:app`); `TOP_TEST_DIR` is where its SQLite job
queue and monitor store live. Three jobs wait in the `mail` queue (no worker runs them); `/work`
enqueues a job on the `work` queue, which a worker in the app's lifespan runs; `/ws` is a real-time hub.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute

import perfkit
from perfkit import Cache, JobQueue
from perfkit.monitor import MonitorConfig
from perfkit.realtime import Hub

TOKEN = "top-test-token"
HERE = os.environ.get("TOP_TEST_DIR", ".")
cache = Cache("memory://", namespace="top")
jobs = JobQueue(f"sqlite:///{HERE}/jobs.db")
hub = Hub("memory://")  # its `realtime_connections` gauge is top's "rt conns"


@jobs.task(queue="mail")
async def send_mail(ctx: object, to: str) -> None:
    return None


@jobs.task(queue="work")
async def crunch(ctx: object) -> None:
    return None


async def work(request: Request) -> Response:
    await crunch.enqueue()
    return JSONResponse({"queued": True})


async def fast(request: Request) -> Response:
    return JSONResponse(await cache.get_or_set("k", lambda: {"ok": True}, ttl=60))


async def slow(request: Request) -> Response:
    await asyncio.sleep(0.03)
    return JSONResponse({"slow": True})


async def boom(request: Request) -> Response:
    return PlainTextResponse("broken", status_code=500)


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    for i in range(3):
        await send_mail.enqueue(f"user{i}@example.com")
    worker = jobs.worker(["work"], idle_wait=0.05)
    running = asyncio.create_task(worker.run())
    yield
    worker.stop()
    await running
    await hub.close()
    await jobs.close()


app = perfkit.instrument(
    Starlette(
        routes=[
            Route("/fast", fast),
            Route("/slow", slow),
            Route("/boom", boom),
            Route("/work", work),
            WebSocketRoute("/ws", hub.websocket(auth=None, can_subscribe=lambda user, channel: True)),
        ],
        lifespan=lifespan,
    ),
    cache=cache,
    jobs=jobs,
    monitor=MonitorConfig(token=TOKEN, url=f"sqlite:///{HERE}/monitor.db", publish_interval=0.5),
)
