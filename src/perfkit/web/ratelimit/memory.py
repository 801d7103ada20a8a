"""In-process GCRA: one float per key, expired keys pruned so memory stays bounded."""

from __future__ import annotations

from time import monotonic
from typing import Any

from perfkit.backends import BackendURL
from perfkit.config import parse_int
from perfkit.web.config import RateLimit
from perfkit.web.ratelimit.backend import Decision, gcra


class MemoryRateLimit:
    def __init__(self, url: BackendURL | None = None, **_: Any) -> None:
        options = url.options if url is not None else {}
        self.max_keys = parse_int("max_keys", options.get("max_keys", 100_000), minimum=1)
        self._tat: dict[str, float] = {}

    async def hit(self, key: str, limit: RateLimit, cost: int = 1) -> Decision:
        return self.hit_sync(key, limit, cost)

    def hit_sync(self, key: str, limit: RateLimit, cost: int = 1) -> Decision:
        now = monotonic()
        decision, tat = gcra(self._tat.get(key, now), now, limit, cost)
        if decision.allowed:
            if key not in self._tat and len(self._tat) >= self.max_keys:
                self._prune(now)
            self._tat[key] = tat
        return decision

    def _prune(self, now: float) -> None:
        """Drop keys whose TAT has passed (they are back to a full quota); else the oldest half."""
        expired = [k for k, t in self._tat.items() if t <= now]
        for k in expired:
            del self._tat[k]
        if len(self._tat) >= self.max_keys:
            for k in list(self._tat)[: self.max_keys // 2]:
                del self._tat[k]

    async def close(self) -> None:
        self._tat.clear()
