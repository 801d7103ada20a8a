"""The demo app as `perfkit demo` serves it: the API with perfkit's whole stack and the dashboard.

`uvicorn --factory perfkit.demo.app.main:create_from_env` builds it from the `PERFKIT_DEMO_*` settings.
The naive routes get no compression or ETag, the way an app without perfkit serves them; the fast
ones get the stack's defaults, so the payload column of the demo's table shows what compression buys.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI

from perfkit.demo.app import products, runtime
from perfkit.demo.app.api import DemoState, create_app
from perfkit.demo.app.tasks import build_jobs
from perfkit.demo.settings import DemoSettings, web_rules
from perfkit.monitor import MonitorConfig, RumConfig
from perfkit.web import WebConfig

WEB_CONFIG_RULES = web_rules()


def build(settings: DemoSettings) -> tuple[FastAPI, DemoState]:
    """The instrumented app and what it holds (closed by the app's lifespan)."""
    cache = runtime.cache(settings)
    jobs = build_jobs(settings, cache=cache)
    engine = runtime.async_engine(settings)
    hub = runtime.hub(settings)
    hub.follow_jobs(jobs.queue)  # `enqueued` here; the worker publishes the rest (through Redis)
    state = DemoState.build(engine, cache, jobs, hub)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await hub.close()
        state.invalidator.close()
        await jobs.queue.close()
        images.close()
        await cache.close()
        await engine.dispose()

    app = create_app(state, lifespan=lifespan)
    images = products.add_products(app, cache, settings.token)
    # RUM settles in 5 s (30 s by default): a demo's page views show on the dashboard soon after
    monitor = MonitorConfig(
        token=settings.token, url=settings.monitor_url, window="15m", rum=RumConfig(settle="5s")
    )
    config = WebConfig(rules=WEB_CONFIG_RULES, slow_request=0.5)
    from perfkit import instrument

    instrument(app, cache=cache, jobs=jobs.queue, engine=engine, config=config, monitor=monitor)
    return app, state


def create_from_env() -> Any:
    return build(DemoSettings.from_environ())[0]
