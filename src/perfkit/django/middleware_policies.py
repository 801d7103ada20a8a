"""perfkit.web's policy objects for one set of PERFKIT settings, built once per process (and again when
the settings change or the process forks): what `PerfkitMiddleware` runs each request through."""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from perfkit.django import otel
from perfkit.django.conf import DjangoSettings, get_settings
from perfkit.django.middleware_cache import ResponseCache
from perfkit.django.request import RuleTable, header_keys
from perfkit.errors import ConfigurationError
from perfkit.metrics import default_collector
from perfkit.web.cache_control import CacheControlMiddleware
from perfkit.web.compression import CompressionMiddleware
from perfkit.web.conditional import ConditionalMiddleware
from perfkit.web.config import WebConfig
from perfkit.web.layer import SendLayer
from perfkit.web.ratelimit.memory import MemoryRateLimit
from perfkit.web.ratelimit.middleware import RateLimiter
from perfkit.web.request_metrics import RequestMetrics
from perfkit.web.routing import RouteResolver
from perfkit.web.timing import Timing

__all__ = ["Policies", "current", "perfkit_cache"]

log = logging.getLogger("perfkit.django")


def perfkit_cache(settings: DjangoSettings) -> Any:
    """The perfkit `Cache` behind `CACHES[PERFKIT['cache']]` (its backend's `perfkit_cache`), or None."""
    from django.core.cache import caches

    try:
        backend = caches[settings.cache]
    except Exception as exc:  # InvalidCacheBackendError: the alias is not in CACHES
        raise ConfigurationError(
            "PERFKIT['cache']", f"{settings.cache!r} is not a CACHES alias: {exc}"
        ) from None
    return getattr(backend, "perfkit_cache", None)


def _layers(config: WebConfig, resolver: RouteResolver) -> list[SendLayer]:
    """The send layers the config asks for, innermost first (the order a response meets them): the same
    ones, in the same order, as perfkit.web.stack composes for an ASGI app."""
    wanted: list[type[SendLayer]] = []
    if config.compress:
        wanted.append(CompressionMiddleware)
    if config.etag:
        wanted.append(ConditionalMiddleware)
    if any(r.cache_control for r in config.rules):
        wanted.append(CacheControlMiddleware)
    return [cls(None, config=config, resolver=resolver) for cls in reversed(wanted)]  # type: ignore[arg-type]


class Policies:
    """Timing, metrics, rate limit, send layers and response cache for one `DjangoSettings`."""

    def __init__(self, settings: DjangoSettings) -> None:
        config: WebConfig = settings.web
        collector = default_collector()
        resolver = RouteResolver(None, config)  # routes come from Django's resolver (`RuleTable`)
        self.settings, self.config = settings, config
        self.rules = RuleTable(config)
        self.header_keys = header_keys(config)  # the request headers the policies read (None: all)
        self.timing = Timing(config, collector, resolver)
        self.metrics = RequestMetrics(collector, resolver)
        self.limiter: RateLimiter | None = None
        if config.default_limit is not None or any(r.limit for r in config.rules):
            self.limiter = RateLimiter(config, resolver, collector=collector)
        # the in-process limiter decides without I/O; others (Redis) run on perfkit's background loop
        self.limiter_in_process = self.limiter is not None and isinstance(
            self.limiter.backend, MemoryRateLimit
        )
        self.layers = _layers(config, resolver)
        self.cache: ResponseCache | None = None
        cached = any(r.cache_ttl is not None for r in config.rules)
        if cached or (config.coalesce and any(r.coalesce for r in config.rules)):
            store = perfkit_cache(settings) if cached else None
            if cached and store is None:
                raise ConfigurationError(
                    "PERFKIT['cache']",
                    f"rules with cache_ttl need a perfkit cache: CACHES[{settings.cache!r}] is not "
                    "perfkit.django.cache.PerfkitCache (its backend has no `perfkit_cache`)",
                )
            self.cache = ResponseCache(store, config, collector)
        self.excluded = config.excluded if config.exclude else None
        self.tracer = otel.project.tracer(settings)  # perfkit.otel's RequestTracer; None: PERFKIT['otel'] off
        # under WSGI several threads may finish requests at once; the metrics are written without locks
        self.lock = threading.Lock()

    @staticmethod
    def untraced(path: str) -> bool:
        """True for the paths of perfkit's own monitor views (not traffic: no span)."""
        prefix = otel.monitor_prefix()
        return prefix is not None and path.startswith(prefix)

    def close(self) -> None:
        """Close what these policies opened: a Redis rate limiter's client (on perfkit's loop, whose
        connections they are)."""
        if self.limiter is not None and not self.limiter_in_process:
            from perfkit.django import background

            try:
                background.call(self.limiter.close())
            except Exception as exc:  # Redis gone meanwhile: nothing left to close cleanly
                log.warning("closing the rate limiter failed: %s", exc)


_current: list[Policies] = []


def _forget() -> None:
    _current.clear()


os.register_at_fork(after_in_child=_forget)


def current() -> Policies:
    """The policies for the settings in force (rebuilt when `settings.PERFKIT` changed)."""
    settings = get_settings()
    if _current and _current[0].settings is settings:
        return _current[0]
    policies = Policies(settings)
    old, _current[:] = _current[:], [policies]
    for previous in old:  # the settings changed (tests, `override_settings`): close the old ones
        previous.close()
    if settings.monitor is not None:  # every process publishes its measurements for /perf/metrics
        from perfkit.django import monitoring

        monitoring.ensure_started()
    return policies
