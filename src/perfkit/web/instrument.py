"""`perfkit.instrument(app)`: the whole middleware stack around any ASGI app, in the right order.

Outer to inner: timing -> metrics -> rate limit -> compression -> conditional (ETag/304) ->
Cache-Control -> response cache and coalescing -> the app. Compression sits outside the ETag layer so a
304 is decided before any compression work, and outside the response cache so cached bodies are stored
once, uncompressed. Layers with nothing to do (no limits, no cache rules) are left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from perfkit.errors import ConfigurationError
from perfkit.metrics import Collector, cache_observer, default_collector
from perfkit.web.cache_control import CacheControlMiddleware
from perfkit.web.compression import CompressionMiddleware
from perfkit.web.conditional import ConditionalMiddleware
from perfkit.web.config import WebConfig
from perfkit.web.metrics import MetricsMiddleware
from perfkit.web.ratelimit import RateLimitBackend, RateLimitMiddleware
from perfkit.web.routing import RouteResolver
from perfkit.web.timing import TimingMiddleware
from perfkit.web.types import ASGIApp, Receive, Scope, Send


@dataclass
class Instrumentation:
    """What `instrument()` set up; `app.state.perfkit` (Starlette) or `wrapper.perfkit` (plain ASGI)."""

    config: WebConfig
    collector: Collector
    cache: Any = None
    jobs: Any = None
    engine: Any = None
    rate_limiter: RateLimitBackend | None = None
    monitor: Any = None  # perfkit.monitor.Monitor, mounted under its prefix (default /perf)
    invalidator: Any = None  # perfkit.cache.orm.CacheInvalidator wired for `engine`'s sessions

    async def close(self) -> None:
        """Close what perfkit opened (the rate limiter's Redis client, the monitor's tasks and store,
        the ORM invalidator's session listeners)."""
        if self.invalidator is not None:
            self.invalidator.close()
            self.invalidator = None
        if self.rate_limiter is not None:
            await self.rate_limiter.close()
        if self.monitor is not None:
            await self.monitor.close()


def build_stack(app: ASGIApp, handle: Instrumentation, router_app: Any = None) -> ASGIApp:
    """Compose the layers around `app`; returns the outermost layer (no extra hop of its own)."""
    config, collector = handle.config, handle.collector
    resolver = RouteResolver(router_app if router_app is not None else app, config)
    inner: ASGIApp = app
    if handle.cache is not None and any(r.cache_ttl is not None for r in config.rules):
        from perfkit.web.response_cache import ResponseCacheMiddleware

        inner = ResponseCacheMiddleware(
            inner, cache=handle.cache, config=config, collector=collector, resolver=resolver
        )
    elif config.coalesce and any(r.coalesce for r in config.rules):
        from perfkit.web.coalesce import CoalesceMiddleware

        inner = CoalesceMiddleware(inner, config=config, resolver=resolver)
    if any(r.cache_control for r in config.rules):
        inner = CacheControlMiddleware(inner, config=config, resolver=resolver)
    if config.etag:
        inner = ConditionalMiddleware(inner, config=config, resolver=resolver)
    if config.compress:
        inner = CompressionMiddleware(inner, config=config, resolver=resolver)
    limiter = None
    if config.default_limit is not None or any(r.limit for r in config.rules):
        limiter = RateLimitMiddleware(inner, config=config, collector=collector, resolver=resolver)
        handle.rate_limiter = limiter.backend
    # timing, metrics and the rate limit share one ASGI layer (one send wrapper per request)
    metrics = MetricsMiddleware(inner, config=config, collector=collector, resolver=resolver)
    outer: ASGIApp = TimingMiddleware(
        inner, config=config, collector=collector, resolver=resolver, metrics=metrics, limiter=limiter,
        fold=True,
    )  # fmt: skip
    if config.exclude:
        outer = _Exclude(outer, app, config)
    if handle.monitor is not None:  # outermost: /perf/* never passes through the app's stack
        outer = handle.monitor.mount(outer)
    return outer


class _Exclude:
    """Excluded paths (e.g. the monitoring endpoints) go straight to the app, past every layer."""

    def __init__(self, stack: ASGIApp, bare: ASGIApp, config: WebConfig) -> None:
        self.stack, self.bare, self.config = stack, bare, config

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.config.excluded(scope["path"]):
            await self.bare(scope, receive, send)
            return
        await self.stack(scope, receive, send)


class PerfkitStack:
    """Starlette middleware factory: `add_middleware(PerfkitStack, handle=...)` inserts the composed
    stack itself (`__new__` returns its outer layer, so there is no extra ASGI hop)."""

    def __new__(cls, app: ASGIApp, *, handle: Instrumentation, router_app: Any = None) -> Any:
        return build_stack(app, handle, router_app)


def instrument(
    app: Any,
    *,
    cache: Any = None,
    jobs: Any = None,
    engine: Any = None,
    config: WebConfig | None = None,
    collector: Collector | None = None,
    monitor: Any = None,
    orm_invalidation: bool = True,
) -> Any:
    """Add perfkit's stack to `app` and return the app to serve.

    Starlette and FastAPI apps get the stack as middleware and are returned as they are; any other
    ASGI callable is wrapped and the wrapper is returned. `engine` (a SQLAlchemy Engine or AsyncEngine)
    gets query instrumentation feeding the same collector; so do `jobs`' events (a `JobQueue`:
    `jobs_events_total{queue,event}`, `jobs_wait_seconds`, `jobs_run_seconds`), once per collector.
    `monitor` (a `perfkit.monitor.MonitorConfig` or `Monitor`; default: one configured from
    `PERFKIT_MONITOR_*`; `False`: none) is mounted under its prefix, `/perf` by default.

    With both `cache` and `engine`, every session bound to `engine` is watched by a
    `perfkit.cache.orm.CacheInvalidator` for `cache` (`handle.invalidator`), so what a rule's
    `cache_depends_on`, a `depends_on` or `cache.query` cached is evicted when a commit changes its
    rows. Left out when `orm_invalidation=False`, or when the cache already has an invalidator of your
    own (yours, with its strategies, stays the only one).
    """
    if not isinstance(orm_invalidation, bool):
        raise ConfigurationError("orm_invalidation", f"must be True or False, not {orm_invalidation!r}")
    handle = Instrumentation(
        config=config or WebConfig(), collector=collector or default_collector(),
        cache=cache, jobs=jobs, engine=engine,
    )  # fmt: skip
    if monitor is not False:
        from perfkit.monitor.monitor import Monitor

        handle.monitor = (
            monitor
            if isinstance(monitor, Monitor)
            else Monitor(monitor, collector=handle.collector, cache=cache, jobs=jobs, engine=engine)
        )
    if jobs is not None and hasattr(jobs, "on_event"):  # job events -> the collector, monitor or not
        from perfkit.monitor.jobs import observe_jobs

        observe_jobs(jobs, handle.collector)
    if cache is not None and hasattr(cache, "add_observer"):
        cache.add_observer(cache_observer(handle.collector))
    if engine is not None:
        from perfkit.db import instrument_engine

        instrument_engine(engine, collector=handle.collector)
        watched = getattr(cache, "invalidated_on_commit", True)  # not a perfkit Cache: nothing to wire
        if orm_invalidation and cache is not None and not watched:
            from perfkit.cache.orm import CacheInvalidator

            handle.invalidator = CacheInvalidator(cache)
            handle.invalidator.instrument_engine_sessions(engine)
    if hasattr(app, "add_middleware") and hasattr(app, "state"):
        app.add_middleware(PerfkitStack, handle=handle, router_app=app)
        app.state.perfkit = handle
        return app
    stack = build_stack(app, handle)
    stack.perfkit = handle  # type: ignore[attr-defined]  # documented attribute on the wrapper
    return stack
