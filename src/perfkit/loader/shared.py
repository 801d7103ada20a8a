"""The optional cross-request layer of a loader: a perfkit `Cache`, partitioned and ORM-invalidated.

Keys are `loader:<name>:<partition>:<key>`: `partition()` runs in the request's context (the tenant, say),
so two tenants never share an entry even for the same key. `depends_on` items are the cache's own
(`Cache.cached(depends_on=...)`, `perfkit.cache.depends`), with `"{key}"` standing for the loaded key:
`depends_on=[Comment.ticket_id == "{key}"]` lets a `CacheInvalidator` evict exactly the tickets whose
comments a commit changed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable, Iterable
from typing import Any

from perfkit.cache.depends import compile_dependencies

__all__ = ["SharedCache"]


class SharedCache:
    """`get` and `set` of a batch's keys in one perfkit `Cache`, one round trip each way."""

    def __init__(
        self,
        cache: Any,
        name: str,
        ttl: float,
        depends_on: Iterable[Any] | None,
        partition: Callable[[], str] | None,
    ) -> None:
        self.cache = cache
        self.name = name
        self.ttl = ttl
        self.tags = compile_dependencies(depends_on, cache) if depends_on else None
        self.partition = partition

    def _prefix(self) -> str:
        part = "-" if self.partition is None else str(self.partition())
        return f"loader:{self.name}:{part}:"

    async def get(self, keys: list[Hashable]) -> dict[Hashable, Any]:
        """The cached values of `keys` that are present, by key."""
        prefix = self._prefix()
        names = {f"{prefix}{k}": k for k in keys}
        found = await self.cache.get_many(list(names))
        return {names[n]: v for n, v in found.items()}

    async def set(self, loaded: dict[Hashable, Any]) -> None:
        """Store freshly loaded values, each with its dependency tags."""
        prefix = self._prefix()
        if self.tags is None:
            await self.cache.set_many({f"{prefix}{k}": v for k, v in loaded.items()}, self.ttl)
            return
        build = self.tags
        await asyncio.gather(
            *(self.cache.set(f"{prefix}{k}", v, self.ttl, tags=build({"key": k})) for k, v in loaded.items())
        )
