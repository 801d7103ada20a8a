"""The demo app as `perfkit demo` builds it (from `PERFKIT_DEMO_*`), plus a job worker in the same
process: on the embedded setup the hub is memory://, so job progress reaches the live page only from
a worker in the app's process (with `--redis` the separate `perfkit worker` publishes it).

The worker starts on `POST /test/worker` (a test starts it once the page follows the job, so the job's
events cannot all be over before the page listens)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI

from perfkit.demo.app.main import build
from perfkit.demo.settings import DemoSettings


def create() -> Any:
    app, state = build(DemoSettings.from_environ())
    assert state.jobs is not None
    queue = state.jobs.queue
    inner = app.router.lifespan_context

    worker = queue.worker(queues=["demo"], concurrency=1)
    running: list[asyncio.Task[Any]] = []

    @app.post("/test/worker")
    async def start_worker() -> dict[str, bool]:
        if not running:
            running.append(asyncio.create_task(worker.run()))
        return {"started": True}

    @contextlib.asynccontextmanager
    async def lifespan(a: FastAPI) -> AsyncIterator[None]:
        async with inner(a):
            try:
                yield
            finally:
                worker.stop(hurry=True)
                await asyncio.gather(*running)

    app.router.lifespan_context = lifespan
    return app
