"""The rate-limit backend contract, the GCRA arithmetic, and the registry that picks a backend by URL.

GCRA (generic cell rate algorithm): each key keeps one number, its theoretical arrival time (TAT).
A limit of `limit` per `period` allows a burst of `limit` and then one request every `period / limit`.
Memory is O(1) per key and the check is one read and one write, which Redis does atomically in Lua.
"""

from __future__ import annotations

import math
from time import monotonic
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


class GcraTable:
    """The one GCRA, in process: a TAT per key, at most `max_keys` of them (expired keys pruned)."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self.max_keys = max_keys
        self.tats: dict[str, float] = {}

    def hit_sync(self, key: str, limit: RateLimit, cost: int = 1, now: float | None = None) -> Decision:
        """Decide one request for `key` at `now` (default: the monotonic clock), storing its new TAT
        when allowed. (One frame: the arithmetic is not a call of its own.)"""
        if now is None:
            now = monotonic()
        tats = self.tats
        tat = tats.get(key, now)
        period = limit.period
        interval = period / limit.limit
        if tat < now:
            tat = now
        new_tat = tat + interval * cost
        allow_at = new_tat - period
        # (tuple.__new__ is what Decision(...) calls, without the generated __new__'s Python frame)
        if allow_at > now + 1e-9:
            return _new(Decision, (False, 0, tat - now, allow_at - now))
        if len(tats) >= self.max_keys and key not in tats:
            self.prune(now)
        tats[key] = new_tat
        remaining = math.floor((now - allow_at) / interval + 1e-9)
        return _new(Decision, (True, remaining, new_tat - now, 0.0))

    def prune(self, now: float) -> None:
        """Drop keys whose TAT has passed (they are back to a full quota); else the oldest half."""
        tats = self.tats
        for k in [k for k, t in tats.items() if t <= now]:
            del tats[k]
        if len(tats) >= self.max_keys:
            for k in list(tats)[: self.max_keys // 2]:
                del tats[k]


def gcra(tat: float, now: float, limit: RateLimit, cost: int = 1) -> tuple[Decision, float]:
    """Decide one request from its key's TAT; returns the decision and the new TAT (unchanged when
    refused). `GcraTable.hit_sync` on a table of one key."""
    table = GcraTable()
    table.tats[""] = tat
    decision = table.hit_sync("", limit, cost, now)
    return decision, table.tats[""]


registry: Registry[RateLimitBackend] = Registry("rate limit")
registry.register("memory", "perfkit.web.ratelimit.memory:MemoryRateLimit")
registry.register("redis", "perfkit.web.ratelimit.redis:RedisRateLimit", extra="redis")
registry.register("rediss", "perfkit.web.ratelimit.redis:RedisRateLimit", extra="redis")
for _scheme in ("redis+cluster", "rediss+cluster"):
    registry.register(_scheme, "perfkit.web.ratelimit.redis_cluster:RedisClusterRateLimit", extra="redis")


def create_backend(url: str, **options: float) -> RateLimitBackend:
    """`memory://` for one process, `redis://host:6379/0` (or `redis+cluster://host:7000`) for many."""
    return registry.create(url, "rate_limit_url", **options)
