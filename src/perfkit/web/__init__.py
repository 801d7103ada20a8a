"""perfkit's web layer: pure-ASGI middleware, each usable alone, composed by `perfkit.web.stack`.

`instrument`, `Instrumentation`, `PerfkitStack` and `build_stack` live in the composition root
(`perfkit.instrument`), which wires this layer with the others; they stay reachable here by name.
"""

from typing import TYPE_CHECKING, Any

from perfkit.web.cache_control import CacheControlMiddleware
from perfkit.web.coalesce import CoalesceMiddleware
from perfkit.web.compression import CompressionMiddleware
from perfkit.web.conditional import ConditionalMiddleware
from perfkit.web.config import RateLimit, Rule, WebConfig
from perfkit.web.ratelimit import RateLimitMiddleware
from perfkit.web.request_metrics import MetricsMiddleware
from perfkit.web.response_cache import ResponseCacheMiddleware
from perfkit.web.timing import TimingMiddleware

__all__ = [
    "CacheControlMiddleware",
    "CoalesceMiddleware",
    "CompressionMiddleware",
    "ConditionalMiddleware",
    "Instrumentation",
    "MetricsMiddleware",
    "PerfkitStack",
    "RateLimit",
    "RateLimitMiddleware",
    "ResponseCacheMiddleware",
    "Rule",
    "TimingMiddleware",
    "WebConfig",
    "build_stack",
    "instrument",
]

if TYPE_CHECKING:
    from perfkit.instrument import Instrumentation, PerfkitStack, build_stack, instrument

_ROOT = frozenset({"Instrumentation", "PerfkitStack", "build_stack", "instrument"})


def __getattr__(name: str) -> Any:
    """The composition root's names, a compatibility alias resolved when first asked for: importing this
    layer never imports `perfkit.instrument`, the layer above it (which imports this one)."""
    if name not in _ROOT:
        raise AttributeError(f"module 'perfkit.web' has no attribute {name!r}")
    from perfkit.instrument import Instrumentation, PerfkitStack, build_stack, instrument

    root: dict[str, Any] = {
        "Instrumentation": Instrumentation,
        "PerfkitStack": PerfkitStack,
        "build_stack": build_stack,
        "instrument": instrument,
    }
    return root[name]
