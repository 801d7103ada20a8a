"""The web stack composed around an app, in the right order: what `perfkit.instrument()` mounts.

Outer to inner: timing -> metrics -> rate limit -> compression -> conditional (ETag/304) ->
Cache-Control -> response cache and coalescing -> the app. Compression sits outside the ETag layer so a
304 is decided before any compression work, and outside the response cache so cached bodies are stored
once, uncompressed. Layers with nothing to do (no limits, no cache rules) are left out.
"""

from __future__ import annotations

from typing import Any

from perfkit.metrics import Collector
from perfkit.web.cache_control import CacheControlMiddleware
from perfkit.web.compression import CompressionMiddleware
from perfkit.web.conditional import ConditionalMiddleware
from perfkit.web.config import WebConfig
from perfkit.web.layer import SendLayer
from perfkit.web.pipeline import Front, Pipeline, TracerPart
from perfkit.web.ratelimit import RateLimitBackend
from perfkit.web.ratelimit.middleware import RateLimiter
from perfkit.web.request_metrics import RequestMetrics
from perfkit.web.routing import RouteResolver
from perfkit.web.timing import Timing
from perfkit.web.types import ASGIApp

__all__ = ["Stack", "compose"]

# the send layers, outer to inner, and when each one is in the stack
_SEND_LAYERS: tuple[tuple[type[SendLayer], Any], ...] = (
    (CompressionMiddleware, lambda config: config.compress),
    (ConditionalMiddleware, lambda config: config.etag),
    (CacheControlMiddleware, lambda config: any(r.cache_control for r in config.rules)),
)


class Stack:
    """The composed stack: `app` is its outer layer, `rate_limiter` the backend it opened (or None)."""

    def __init__(self, app: ASGIApp, rate_limiter: RateLimitBackend | None) -> None:
        self.app, self.rate_limiter = app, rate_limiter


def compose(
    app: ASGIApp,
    config: WebConfig,
    collector: Collector,
    *,
    cache: Any = None,
    router_app: Any = None,
    front: Front | None = None,
    tracer: TracerPart | None = None,
) -> Stack:
    """Compose the layers around `app` (`router_app`: where the routes are, when not `app` itself):
    one pipeline (timing, metrics, rate limit, then the send layers in a loop) around the app, or
    around the response cache or coalescing in front of it; `tracer` (perfkit.otel) spans each request."""
    resolver = RouteResolver(router_app if router_app is not None else app, config)
    inner: ASGIApp = app
    if cache is not None and any(r.cache_ttl is not None for r in config.rules):
        from perfkit.web.response_cache import ResponseCacheMiddleware

        inner = ResponseCacheMiddleware(
            inner, cache=cache, config=config, collector=collector, resolver=resolver
        )
    elif config.coalesce and any(r.coalesce for r in config.rules):
        from perfkit.web.coalesce import CoalesceMiddleware

        inner = CoalesceMiddleware(inner, config=config, resolver=resolver)
    layers = [cls(inner, config=config, resolver=resolver) for cls, wanted in _SEND_LAYERS if wanted(config)]
    limiter = None
    if config.default_limit is not None or any(r.limit for r in config.rules):
        limiter = RateLimiter(config, resolver, collector=collector)
    outer = Pipeline(
        inner, resolver, timing=Timing(config, collector, resolver),
        metrics=RequestMetrics(collector, resolver), limiter=limiter, layers=layers, front=front,
        excluded=config.excluded if config.exclude else None, bare=app, tracer=tracer,
    )  # fmt: skip
    return Stack(outer, limiter.backend if limiter is not None else None)
