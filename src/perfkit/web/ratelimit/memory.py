"""In-process GCRA: one float per key, expired keys pruned so memory stays bounded."""

from __future__ import annotations

from typing import Any

from perfkit.backends import BackendURL
from perfkit.config import parse_int
from perfkit.web.config import RateLimit
from perfkit.web.ratelimit.backend import Decision, GcraTable


class MemoryRateLimit(GcraTable):
    """The rate-limit backend of one process: `GcraTable` (its `hit_sync` decides without I/O)."""

    def __init__(self, url: BackendURL | None = None, **_: Any) -> None:
        options = url.options if url is not None else {}
        super().__init__(parse_int("max_keys", options.get("max_keys", 100_000), minimum=1))

    async def hit(self, key: str, limit: RateLimit, cost: int = 1) -> Decision:
        return self.hit_sync(key, limit, cost)

    async def close(self) -> None:
        self.tats.clear()
