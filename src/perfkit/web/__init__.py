"""perfkit's web layer: pure-ASGI middleware, each usable alone, composed by `instrument()`."""

from perfkit.web.cache_control import CacheControlMiddleware
from perfkit.web.compression import CompressionMiddleware
from perfkit.web.conditional import ConditionalMiddleware
from perfkit.web.config import RateLimit, Rule, WebConfig
from perfkit.web.instrument import Instrumentation, PerfkitStack, build_stack, instrument
from perfkit.web.metrics import MetricsMiddleware
from perfkit.web.ratelimit import RateLimitMiddleware
from perfkit.web.timing import TimingMiddleware

__all__ = [
    "CacheControlMiddleware",
    "CompressionMiddleware",
    "ConditionalMiddleware",
    "Instrumentation",
    "MetricsMiddleware",
    "PerfkitStack",
    "RateLimit",
    "RateLimitMiddleware",
    "Rule",
    "TimingMiddleware",
    "WebConfig",
    "build_stack",
    "instrument",
]
