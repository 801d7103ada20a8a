"""`perfkit.instrument(app)`: the composition root. It wires the web stack, the database hooks, the
cache's metrics, the job events and the monitor around one app; none of those parts imports this module.

Its imports of those parts are made when `instrument()` runs, so `import perfkit` stays cheap (no
starlette, no SQLAlchemy). The web stack itself is composed by `perfkit.web.stack.compose`.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from perfkit.errors import ConfigurationError
from perfkit.metrics import Collector, cache_observer, default_collector

if TYPE_CHECKING:
    from perfkit.otel import OtelConfig
    from perfkit.web.config import WebConfig
    from perfkit.web.ratelimit import RateLimitBackend
    from perfkit.web.types import ASGIApp

__all__ = ["Instrumentation", "PerfkitStack", "build_stack", "instrument"]

# The old address of this module keeps working (`from perfkit.web.instrument import instrument`,
# documented in docs/web.md): registered from here, above the web layer, since `import perfkit` always
# runs this module first. A shim file perfkit/web/instrument.py could not do it: importing it would bind
# `perfkit.web.instrument` to that module and shadow the function `from perfkit.web import instrument`
# returns (web's lazy `__getattr__`).
sys.modules.setdefault("perfkit.web.instrument", sys.modules[__name__])


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
    otel: Any = None  # perfkit.otel.OpenTelemetry, when `otel=` asked for it
    # this instrument() call's hold (a perfkit.db.Instrumented) on `engine`'s hooks, which it shares
    # with whoever else instrumented the engine (`instrument_engine`, another instrument() call)
    engine_hooks: Any = field(default=None, repr=False)

    async def close(self) -> None:
        """Close what perfkit opened (the rate limiter's Redis client, the monitor's tasks and store,
        the ORM invalidator's session listeners, its SQL spans) and let go of `engine`'s query hooks;
        safe to call twice.

        The hooks are one per engine, shared by everyone who instrumented it: they come off once the
        last holder lets go. Another `instrument()` call on the same engine keeps counting until its
        own close; an engine the application instrumented itself (`perfkit.db.instrument_engine`)
        keeps its hooks, which the application removes (`uninstrument_engine`) when it wants.
        """
        if self.engine_hooks is not None:
            if self.otel is not None:  # the hooks may stay (shared): this call's SQL spans end here
                self.otel.unwatch_statements(self.engine_hooks.hooks)
            self.engine_hooks.remove()  # a no-op if `uninstrument_engine` took them off meanwhile
            self.engine_hooks = None
        if self.invalidator is not None:
            self.invalidator.close()
            self.invalidator = None
        if self.rate_limiter is not None:
            await self.rate_limiter.close()
        if self.monitor is not None:
            await self.monitor.close()


def build_stack(app: ASGIApp, handle: Instrumentation, router_app: Any = None) -> ASGIApp:
    """The web stack around `app` for `handle` (its rate limiter lands in `handle.rate_limiter`), with
    the monitor mounted outermost: /perf/* never passes through the app's stack."""
    from perfkit.web.stack import compose

    # the monitor is the stack's front: /perf/* is served before any layer, in the same ASGI hop
    front = handle.monitor.mount(app) if handle.monitor is not None else None
    tracer = handle.otel.requests if handle.otel is not None else None
    stack = compose(
        app, handle.config, handle.collector, cache=handle.cache, router_app=router_app, front=front,
        tracer=tracer,
    )  # fmt: skip
    handle.rate_limiter = stack.rate_limiter
    return stack.app


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
    otel: OtelConfig | bool | None = None,
) -> Any:
    """Add perfkit's stack to `app` and return the app to serve.

    Starlette and FastAPI apps get the stack as middleware and are returned as they are; any other
    ASGI callable is wrapped and the wrapper is returned. `engine` (a SQLAlchemy Engine or AsyncEngine)
    gets query instrumentation feeding the same collector (unless it has perfkit's hooks already:
    they are shared, and the handle's `close()` lets go of this call's hold on them); so do `jobs`'
    events (a `JobQueue`: `jobs_events_total{queue,event}`, `jobs_wait_seconds`, `jobs_run_seconds`),
    once per collector.
    `monitor` (a `perfkit.monitor.MonitorConfig` or `Monitor`; default: one configured from
    `PERFKIT_MONITOR_*`; `False`: none) is mounted under its prefix, `/perf` by default.

    With both `cache` and `engine`, every session bound to `engine` is watched by a
    `perfkit.cache.orm.CacheInvalidator` for `cache` (`handle.invalidator`), so what a rule's
    `cache_depends_on`, a `depends_on` or `cache.query` cached is evicted when a commit changes its
    rows. Left out when `orm_invalidation=False`, or when the cache already has an invalidator of your
    own (yours, with its strategies, stays the only one).

    `otel` (True, or a `perfkit.otel.OtelConfig`; default: `PERFKIT_OTEL=1` in the environment) reports
    requests, SQL, cache operations, jobs and findings to OpenTelemetry (`handle.otel`) through the
    providers the application configured; without an SDK it records nothing (docs/observability.md).
    """
    from perfkit.web.config import WebConfig

    if not isinstance(orm_invalidation, bool):
        raise ConfigurationError("orm_invalidation", f"must be True or False, not {orm_invalidation!r}")
    handle = Instrumentation(
        config=config or WebConfig(), collector=collector or default_collector(),
        cache=cache, jobs=jobs, engine=engine,
    )  # fmt: skip
    if otel is None:
        otel = os.environ.get("PERFKIT_OTEL", "").strip().lower() in ("1", "true", "yes", "on")
    if otel is not False:
        from perfkit.otel import OpenTelemetry, OtelConfig

        handle.otel = OpenTelemetry(OtelConfig.resolve(otel))
        handle.otel.watch_findings(handle.collector)
        if jobs is not None and hasattr(jobs, "hooks"):
            handle.otel.watch_jobs(jobs)
        if cache is not None and hasattr(cache, "add_observer"):
            handle.otel.watch_cache(cache)
    if monitor is not False:
        from perfkit.monitor.monitor import Monitor

        handle.monitor = (
            monitor
            if isinstance(monitor, Monitor)
            else Monitor(monitor, collector=handle.collector, cache=cache, jobs=jobs, engine=engine)
        )
    observed = handle.monitor is not None and handle.monitor.observes(jobs, handle.collector)
    if jobs is not None and hasattr(jobs, "on_event") and not observed:  # job events -> the collector
        from perfkit.monitor.jobs import observe_jobs

        observe_jobs(jobs, handle.collector)
    if cache is not None and hasattr(cache, "add_observer"):
        cache.add_observer(cache_observer(handle.collector))
    if engine is not None:
        from perfkit.db import instrument_engine

        instrumented = handle.engine_hooks = instrument_engine(engine, collector=handle.collector)
        if handle.otel is not None:
            handle.otel.watch_statements(instrumented.hooks)
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
