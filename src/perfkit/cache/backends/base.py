"""The contract every cache backend implements.

Keys arrive fully qualified (namespace prefix included, validated, hashed when long) and tags arrive
namespaced too: backends store and index, nothing more. Byte backends (SQLite, Redis) store what the
codec produced; the memory backend stores Python objects (`stores_objects`), so an in-process hit
costs a dict lookup, not a decode. Backends raise `BackendUnavailableError` when the store is down or
slow and `BackendError` for other driver failures, never a driver's own exception.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from perfkit.cache.backends.memory import MemoryBackend
    from perfkit.cache.coherence import Coherence


class CacheBackend(Protocol):
    kind: str  # "memory", "sqlite", "redis": reported per tier in stats
    stores_objects: bool
    shared: bool  # visible to other processes, so stampede locks and coherence go through it

    def key_prefix(self, namespace: str) -> str:
        """What goes before every key and tag of `namespace` (Redis adds its cluster hash tag)."""
        ...

    async def get(self, key: str) -> Any | None: ...

    async def get_many(self, keys: Sequence[str]) -> list[Any | None]: ...

    async def set(
        self,
        key: str,
        value: Any,
        ttl: float | None,
        tags: Sequence[str] = (),
        expect: Sequence[int] | None = None,
    ) -> bool:
        """Store; with `expect`, only if every tag's version still equals it (else False, nothing written)."""
        ...

    async def tag_versions(self, tags: Sequence[str]) -> list[int]:
        """The current version of each tag; `invalidate_tags` bumps them (the stale-set race guard)."""
        ...

    async def set_many(
        self, items: Sequence[tuple[str, Any]], ttl: float | None, tags: Sequence[str] = ()
    ) -> None: ...

    async def delete(self, keys: Sequence[str]) -> int: ...

    async def exists(self, key: str) -> bool: ...

    async def incr(self, key: str, delta: int, ttl: float | None) -> int: ...

    async def invalidate_tags(self, tags: Sequence[str], removed_keys: list[str] | None = None) -> int:
        """Remove every key carrying a tag; appends the removed keys to `removed_keys` where it can."""
        ...

    async def delete_match(self, pattern: str) -> int: ...

    async def clear(self, prefix: str) -> int: ...

    async def acquire_lock(self, key: str, token: str, ttl: float) -> bool: ...

    async def release_lock(self, key: str, token: str) -> None: ...

    def coherence(self, prefix: str, l1: MemoryBackend, interval: float) -> Coherence | None:
        """What keeps an in-process L1 in front of this tier coherent with it (None: nothing needed).
        `interval`: how often a polling implementation may look for changes."""
        ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...
