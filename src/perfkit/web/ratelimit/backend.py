"""The rate-limit backend contract, the GCRA arithmetic, and the registry that picks a backend by URL.

GCRA (generic cell rate algorithm): each key keeps one number, its theoretical arrival time (TAT).
A limit of `limit` per `period` allows a burst of `limit` and then one request every `period / limit`.
Memory is O(1) per key and the check is one read and one write, which Redis does atomically in Lua.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Protocol

from perfkit.backends import Registry
from perfkit.web.config import RateLimit


class Decision(NamedTuple):
    allowed: bool
    remaining: int
    reset: float  # seconds until the full quota is available again
    retry_after: float  # seconds until the next request would be allowed (0 when allowed)


class RateLimitBackend(Protocol):
    async def hit(self, key: str, limit: RateLimit, cost: int = 1) -> Decision: ...

    async def close(self) -> None: ...


_new = tuple.__new__


def gcra(tat: float, now: float, limit: RateLimit, cost: int = 1) -> tuple[Decision, float]:
    """Decide one request; returns the decision and the new TAT (unchanged when refused)."""
    period = limit.period
    interval = period / limit.limit
    if tat < now:
        tat = now
    new_tat = tat + interval * cost
    allow_at = new_tat - period
    # (tuple.__new__ is what Decision(...) calls, without the generated __new__'s Python frame)
    if allow_at > now + 1e-9:
        return _new(Decision, (False, 0, tat - now, allow_at - now)), tat
    return _new(Decision, (True, math.floor((now - allow_at) / interval + 1e-9), new_tat - now, 0.0)), new_tat


registry: Registry[RateLimitBackend] = Registry("rate limit")
registry.register("memory", "perfkit.web.ratelimit.memory:MemoryRateLimit")
registry.register("redis", "perfkit.web.ratelimit.redis:RedisRateLimit", extra="redis")
registry.register("rediss", "perfkit.web.ratelimit.redis:RedisRateLimit", extra="redis")
for _scheme in ("redis+cluster", "rediss+cluster"):
    registry.register(_scheme, "perfkit.web.ratelimit.redis_cluster:RedisClusterRateLimit", extra="redis")


def create_backend(url: str, **options: float) -> RateLimitBackend:
    """`memory://` for one process, `redis://host:6379/0` (or `redis+cluster://host:7000`) for many."""
    return registry.create(url, "rate_limit_url", **options)
