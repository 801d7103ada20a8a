"""Rate limiting (GCRA) per client and per route class, memory or Redis, with IETF RateLimit headers."""

from perfkit.web.ratelimit.backend import Decision, RateLimitBackend, create_backend
from perfkit.web.ratelimit.middleware import RateLimitMiddleware

__all__ = ["Decision", "RateLimitBackend", "RateLimitMiddleware", "create_backend"]
