"""In-process backend: an LRU dict with per-key expiry and a tag index. Also the L1 of a tiered cache.

Values are stored as the objects themselves: a hit is one dict lookup and no decode, which is what
makes an L1 worth having. The flip side, documented: a cached mutable object is shared by every reader
of that key in the process. All operations are synchronous at heart (`lookup`, `store`, ...) so the
sync facade and the async front share one implementation; the async methods are thin wrappers.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from perfkit.backends import BackendURL
from perfkit.cache.pattern import compile_pattern
from perfkit.config import parse_int
from perfkit.errors import SerializationError

_monotonic = time.monotonic
_MAX_VERSIONS = 100_000
REMOVE_CHUNK = 2000  # keys removed between two turns of the event loop by an async tag invalidation


class Item(NamedTuple):
    value: Any
    expires_at: float | None  # monotonic clock
    fresh_until: float | None  # monotonic clock; None: always fresh
    tags: tuple[str, ...]


class MemoryBackend:
    kind = "memory"
    stores_objects = True
    shared = False

    def key_prefix(self, namespace: str) -> str:
        return namespace + ":"

    def __init__(self, url: BackendURL | None = None, *, max_size: int | None = None) -> None:
        if max_size is None and url is not None and "max_size" in url.options:
            max_size = parse_int("max_size", url.options["max_size"], minimum=1)
        self.max_size = max_size
        self._data: OrderedDict[str, Item] = OrderedDict()
        self._tags: dict[str, set[str]] = {}
        self._locks: dict[str, tuple[str, float]] = {}
        self._versions: OrderedDict[str, int] = OrderedDict()  # bounded; forgetting bumps the epoch
        self._epoch = 0
        # key sets of tags being invalidated by `remove_tags_async`: unreadable at once, removed in chunks
        self._doomed: list[set[str]] = []
        self._sets_since_sweep = 0
        self.on_evict: Callable[[int], None] | None = None  # told how many keys LRU evicted

    # -- synchronous core -------------------------------------------------------------------------

    def lookup(self, key: str) -> Item | None:
        item = self._data.get(key)
        if item is None:
            return None
        if item.expires_at is not None and item.expires_at <= _monotonic():
            self._remove(key)
            return None
        if self._doomed and self._is_doomed(key):  # its tag is being invalidated (remove_tags_async)
            return None
        if self.max_size is not None:
            try:  # noqa: SIM105 - try/except is cheaper than contextlib.suppress on the hit path
                self._data.move_to_end(key)
            except KeyError:  # removed by another thread between get and move
                pass
        return item

    def store(
        self,
        key: str,
        value: Any,
        ttl: float | None,
        tags: Sequence[str] = (),
        fresh_for: float | None = None,
    ) -> None:
        now = _monotonic()
        expires_at = now + ttl if ttl is not None else None
        self.store_item(
            key, Item(value, expires_at, now + fresh_for if fresh_for is not None else None, tuple(tags))
        )

    def store_item(self, key: str, item: Item) -> None:
        if self._doomed:  # written after the invalidation began: not part of it
            for doomed in self._doomed:
                doomed.discard(key)
        old = self._data.get(key)
        if old is not None and old.tags:
            self._untag(key, old.tags)
        self._data[key] = item
        if self.max_size is not None:
            self._data.move_to_end(key)
        for tag in item.tags:
            self._tags.setdefault(tag, set()).add(key)
        if self.max_size is not None and len(self._data) > self.max_size:
            self._evict()
        self._sets_since_sweep += 1
        if self._sets_since_sweep >= max(1024, len(self._data) // 4):
            self.sweep()

    def remove(self, keys: Sequence[str]) -> int:
        return sum(1 for key in keys if self._remove(key))

    def versions(self, tags: Sequence[str]) -> list[int]:
        base = self._epoch << 40
        return [base | self._versions.get(tag, 0) for tag in tags]

    def _bump(self, tags: Sequence[str]) -> None:
        for tag in tags:
            self._versions[tag] = self._versions.get(tag, 0) + 1
            self._versions.move_to_end(tag)
        while len(self._versions) > _MAX_VERSIONS:
            self._versions.popitem(last=False)
            self._epoch += 1  # a forgotten version must not compare equal to an old reading

    def remove_tags(self, tags: Sequence[str]) -> int:
        self._bump(tags)
        removed = 0
        for tag in tags:
            for key in list(self._tags.get(tag, ())):
                removed += self._remove(key)
            self._tags.pop(tag, None)
        return removed

    async def remove_tags_async(self, tags: Sequence[str], chunk: int = REMOVE_CHUNK) -> int:
        """`remove_tags` that lets the event loop run every `chunk` keys. The tags' key sets are taken
        whole first (O(1) per tag), so from the first step on no read returns one of those keys and a
        key written meanwhile is kept; then the keys are removed in chunks. A cancelled call finishes
        the removal at once."""
        self._bump(tags)
        return await self._remove_doomed(
            [keys for keys in (self._tags.pop(tag, None) for tag in tags) if keys], chunk
        )

    async def remove_async(self, keys: Sequence[str], chunk: int = REMOVE_CHUNK) -> int:
        """`remove` that lets the event loop run every `chunk` keys; none of them is readable meanwhile."""
        if len(keys) <= chunk:
            return self.remove(keys)
        return await self._remove_doomed([set(keys)], chunk)

    async def _remove_doomed(self, sets: list[set[str]], chunk: int) -> int:
        self._doomed.extend(sets)
        removed = 0
        try:
            for keys in sets:
                while keys:
                    for _ in range(min(chunk, len(keys))):
                        removed += self._remove(keys.pop())
                    if keys or keys is not sets[-1]:
                        await asyncio.sleep(0)
        finally:
            for keys in sets:
                while keys:
                    removed += self._remove(keys.pop())
                self._doomed.remove(keys)
        return removed

    def _is_doomed(self, key: str) -> bool:
        return any(key in doomed for doomed in self._doomed)

    def remove_match(self, pattern: str) -> int:
        """Remove the keys matching `pattern` (the language of `perfkit.cache.pattern`)."""
        match = compile_pattern(pattern).matches
        return self.remove([k for k in list(self._data) if match(k)])

    def remove_prefix(self, prefix: str) -> int:
        return self.remove([k for k in list(self._data) if k.startswith(prefix)])

    def clear_all(self) -> None:
        self._data.clear()
        self._tags.clear()
        for doomed in self._doomed:
            doomed.clear()

    def sweep(self) -> int:
        """Drop expired items; amortised over sets, so memory does not hold what nobody reads."""
        self._sets_since_sweep = 0
        now = _monotonic()
        dead = [k for k, it in list(self._data.items()) if it.expires_at is not None and it.expires_at <= now]
        return self.remove(dead)

    def __len__(self) -> int:
        return len(self._data)

    def _remove(self, key: str) -> bool:
        item = self._data.pop(key, None)
        if item is None:
            return False
        if item.tags:
            self._untag(key, item.tags)
        return True

    def _untag(self, key: str, tags: tuple[str, ...]) -> None:
        for tag in tags:
            keys = self._tags.get(tag)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._tags[tag]

    def _evict(self) -> None:
        assert self.max_size is not None
        evicted = 0
        while len(self._data) > self.max_size:
            key, item = self._data.popitem(last=False)
            if item.tags:
                self._untag(key, item.tags)
            evicted += 1
        if evicted and self.on_evict is not None:
            self.on_evict(evicted)

    # -- the async contract -----------------------------------------------------------------------

    async def get(self, key: str) -> Item | None:
        return self.lookup(key)

    async def get_many(self, keys: Sequence[str]) -> list[Any | None]:
        return [self.lookup(k) for k in keys]

    async def set(
        self,
        key: str,
        value: Any,
        ttl: float | None,
        tags: Sequence[str] = (),
        expect: Sequence[int] | None = None,
    ) -> bool:
        if expect is not None and self.versions(tags) != list(expect):
            return False
        self.store(key, value, ttl, tags)
        return True

    async def tag_versions(self, tags: Sequence[str]) -> list[int]:
        return self.versions(tags)

    async def set_many(
        self, items: Sequence[tuple[str, Any]], ttl: float | None, tags: Sequence[str] = ()
    ) -> None:
        for key, value in items:
            self.store(key, value, ttl, tags)

    async def delete(self, keys: Sequence[str]) -> int:
        return self.remove(keys)

    async def exists(self, key: str) -> bool:
        return self.lookup(key) is not None

    async def incr(self, key: str, delta: int, ttl: float | None) -> int:
        item = self.lookup(key)
        if item is None:
            self.store(key, delta, ttl)
            return delta
        if not isinstance(item.value, int) or isinstance(item.value, bool):
            raise SerializationError(
                f"cannot incr key {key!r}: it holds a {type(item.value).__name__}, not an int"
            )
        value = item.value + delta
        self.store_item(key, item._replace(value=value))
        return value

    async def invalidate_tags(self, tags: Sequence[str], removed_keys: list[str] | None = None) -> int:
        return await self.remove_tags_async(tags)

    async def delete_match(self, pattern: str) -> int:
        return self.remove_match(pattern)

    async def clear(self, prefix: str) -> int:
        return self.remove_prefix(prefix)

    async def acquire_lock(self, key: str, token: str, ttl: float) -> bool:
        now = _monotonic()
        held = self._locks.get(key)
        if held is not None and held[1] > now and held[0] != token:
            return False
        self._locks[key] = (token, now + ttl)
        return True

    async def release_lock(self, key: str, token: str) -> None:
        held = self._locks.get(key)
        if held is not None and held[0] == token:
            del self._locks[key]

    def coherence(self, prefix: str, l1: MemoryBackend, interval: float) -> None:
        return None  # never shared, so never behind an L1

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None
