"""`Cache`: the public API of perfkit's cache, composing the tier engine and the loader.

A cache is one or two tiers. `Cache("memory://")` is a single in-process tier; `Cache("redis://…")` or
`Cache("sqlite:///…")` a single shared tier; `l1="memory://…"` puts an in-process tier in front of the
shared one, kept coherent across processes (see `coherence`). Reads try L1 then L2 and copy L2 hits
into L1; writes go to L2 then L1. Every tier operation is reported once to the observers (`stats`).

The parts: `config.CacheConfig` (the settings, resolved once), `tiers.Tiers` (the tiers, codec, health,
coherence and observers), `loader.Loader` (single flight, the cross-process lock, stale refresh);
`decorator` and `sync` are built on their public names.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from perfkit.cache import bulk
from perfkit.cache.config import CacheConfig
from perfkit.cache.keys import DEFAULT_MAX_KEY_LENGTH, TTL, UNSET, Unset, check_tags
from perfkit.cache.loader import Loader
from perfkit.cache.pattern import compile_pattern
from perfkit.cache.pattern import escape as escape_pattern
from perfkit.cache.stats import CacheObserver, CacheStats
from perfkit.cache.tiers import Tiers
from perfkit.errors import SerializationError
from perfkit.serialization import Serializer

if TYPE_CHECKING:
    from perfkit.cache.decorator import CachedFunction
    from perfkit.cache.sync import SyncCache

T = TypeVar("T")
_perf = time.perf_counter
_now = time.time


class Cache:
    """An async cache over one or two tiers, chosen by URL scheme.

    Settings not given fall back to `PERFKIT_CACHE_*` environment variables, then to the defaults:
    `memory://`, namespace `default`, `default_ttl` 300 s, msgpack, zstd above 1 KiB, 16 MiB values,
    a 0.5 s L2 timeout and `on_error="degrade"` (an L2 failure is a miss, never an exception).

    A `memory://` cache checks every value as an L2 would (serializable with `serializer`, within
    `max_value_size`, not nested too deeply) and then keeps the object itself, so what works in
    development works on Redis. `check_values=False` (memory:// only) skips that serialization: any
    object, any size, by reference; the faster mode, for values that never go to a shared tier.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        l1: str | None = None,
        namespace: str | None = None,
        default_ttl: TTL | Unset = UNSET,
        serializer: str | Serializer | None = None,
        pickle_key: bytes | str | None = None,
        compression: str | Unset | None = UNSET,
        compress_threshold: int | str | None = None,
        encryption_keys: Sequence[str | bytes] | None = None,
        encrypt_all: bool = True,
        max_value_size: int | str | None = None,
        max_key_length: int = DEFAULT_MAX_KEY_LENGTH,
        timeout: float | str | None = None,
        on_error: str | None = None,
        lock_timeout: float = 10.0,
        l1_ttl: float | None = None,
        coherence_interval: float = 0.05,
        observers: Iterable[CacheObserver] = (),
        check_values: bool = True,
    ) -> None:
        config = CacheConfig.resolve(
            url,
            l1=l1,
            namespace=namespace,
            default_ttl=default_ttl,
            serializer=serializer,
            pickle_key=pickle_key,
            compression=compression,
            compress_threshold=compress_threshold,
            encryption_keys=encryption_keys,
            encrypt_all=encrypt_all,
            max_value_size=max_value_size,
            max_key_length=max_key_length,
            timeout=timeout,
            on_error=on_error,
            lock_timeout=lock_timeout,
            l1_ttl=l1_ttl,
            coherence_interval=coherence_interval,
            check_values=check_values,
        )
        self._assemble(config, observers, None)

    def _assemble(
        self, config: CacheConfig, observers: Iterable[CacheObserver], shared: Cache | None
    ) -> None:
        self.config = config
        self.url = config.url
        self.namespace = config.namespace
        self.default_ttl = config.default_ttl
        self.on_error = config.on_error
        self.timeout = config.timeout
        self.lock_timeout = config.lock_timeout
        self.l1_ttl = config.l1_ttl
        self.max_key_length = config.max_key_length
        self.tiers: Tiers = Tiers(config, observers, shared.tiers if shared is not None else None)
        self.loader: Loader = Loader(self.tiers, config.lock_timeout)
        self._sync: SyncCache | None = None

    # -- ORM invalidation and observation -------------------------------------------------------------

    def add_invalidator(self, invalidator: object) -> None:
        """Record that `invalidator` evicts this cache's ORM dependents on commit (called by
        `perfkit.cache.orm.CacheInvalidator` when it starts watching sessions or engines)."""
        self.tiers.invalidators.add(invalidator)

    def remove_invalidator(self, invalidator: object) -> None:
        """Undo `add_invalidator` (the invalidator was closed)."""
        self.tiers.invalidators.discard(invalidator)

    @property
    def invalidated_on_commit(self) -> bool:
        """True while some `CacheInvalidator` watches sessions or engines on behalf of this cache."""
        return bool(self.tiers.invalidators)

    def add_observer(self, observer: CacheObserver) -> None:
        """Also report every tier operation to `observer` (used by perfkit's monitoring)."""
        self.tiers.add_observer(observer)

    def stats(self) -> CacheStats:
        """Hits, misses, sets, deletes, evictions, errors and mean latency per tier, and the hit ratio."""
        return self.tiers.stats.snapshot(self.namespace, self.tiers.kinds())

    # -- the public API -------------------------------------------------------------------------------

    async def get(self, key: str, default: Any = None) -> Any:
        """The cached value, or `default`. A cached None is a hit and returns None."""
        tiers = self.tiers
        item = tiers.find(key)
        if item is not None:
            return item.value
        if tiers.l2 is None:
            return default
        found, value, _ = await tiers.read(tiers.key(key))
        return value if found else default

    async def exists(self, key: str) -> bool:
        tiers = self.tiers
        if tiers.find(key) is not None:
            return True
        k = tiers.key(key)
        return await tiers.call("exists", lambda b: b.exists(k), False)

    async def set(
        self,
        key: str,
        value: Any,
        ttl: TTL | Unset = UNSET,
        *,
        tags: Iterable[str] | None = None,
        sensitive: bool = False,
    ) -> None:
        """Store `value` for `ttl` seconds (None: no expiry; default: the cache's `default_ttl`)."""
        tiers = self.tiers
        await tiers.write(
            tiers.key(key), value, tiers.ttl(ttl, key), tiers.tags(tags, key), sensitive=sensitive, name=key
        )

    async def delete(self, key: str) -> bool:
        """Remove `key`; True when it was there."""
        tiers = self.tiers
        k = tiers.key(key)
        removed = tiers.l1.remove((k,)) if tiers.l1 is not None else 0
        removed2 = await tiers.call("delete", lambda b: b.delete([k]), 0, always=True)
        return bool(removed or removed2)

    async def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """The cached values of `keys` that are present, as {key: value}; absent keys are left out."""
        return await bulk.read_many(self.tiers, list(keys))

    async def set_many(
        self,
        mapping: Mapping[str, Any],
        ttl: TTL | Unset = UNSET,
        *,
        tags: Iterable[str] | None = None,
        sensitive: bool = False,
    ) -> None:
        """Store every item of `mapping` with the same ttl and tags, in one round trip on Redis."""
        tiers = self.tiers
        await bulk.write_many(tiers, mapping, tiers.ttl(ttl, "*"), tiers.tags(tags), sensitive)

    async def incr(self, key: str, delta: int = 1, ttl: TTL | Unset = UNSET) -> int:
        """Add `delta` to the integer at `key` (created at `delta`, with `ttl`); atomic on every backend."""
        if not isinstance(delta, int) or isinstance(delta, bool):
            raise TypeError(f"incr delta for key {key!r} must be an int, not {type(delta).__name__}")
        try:
            return await self.tiers.incr(self.tiers.key(key), delta, self.tiers.ttl(ttl, key))
        except SerializationError:
            raise SerializationError(f"cannot incr key {key!r}: it does not hold an integer") from None

    async def invalidate_tags(self, tags: Iterable[str]) -> int:
        """Remove every key carrying any of `tags`; returns how many were removed."""
        return await bulk.invalidate(self.tiers, self.tiers.tags(tags))

    async def delete_match(self, pattern: str) -> int:
        """Remove the keys of this namespace matching `pattern`: `*`, `?`, `[...]`, and `\\` to quote
        (see `perfkit.cache.pattern`); every backend removes the same keys. SCAN-based on Redis."""
        if not isinstance(pattern, str) or not pattern:
            raise TypeError("delete_match pattern must be a non-empty string")
        compile_pattern(pattern)  # a malformed pattern is refused before any backend sees it
        tiers = self.tiers
        full = escape_pattern(tiers.prefix) + pattern
        removed = tiers.l1.remove_match(full) if tiers.l1 is not None else 0
        removed2 = await tiers.call("delete", lambda b: b.delete_match(full), 0, always=True)
        return max(removed, removed2)

    async def clear(self) -> int:
        """Remove every key of this namespace (and nothing outside it)."""
        tiers = self.tiers
        prefix = tiers.prefix
        removed = tiers.l1.remove_prefix(prefix) if tiers.l1 is not None else 0
        removed2 = await tiers.call("delete", lambda b: b.clear(prefix), 0, always=True)
        return max(removed, removed2)

    async def get_or_set(
        self,
        key: str,
        loader: Callable[[], T | Awaitable[T]],
        ttl: TTL | Unset = UNSET,
        *,
        tags: Iterable[str] | Callable[[T], Iterable[str]] | None = None,
        stale_ttl: TTL = None,
        serve_stale_on_error: bool = False,
        sensitive: bool = False,
    ) -> T:
        """The cached value, else `loader()` (sync or async) run once per key however many callers miss.

        Concurrent misses in this process share one loader call; with a shared L2 a lock (which
        expires after `lock_timeout`) makes it once across processes. With `stale_ttl`, a value past
        its `ttl` is still served for `stale_ttl` more seconds while one caller refreshes it in the
        background; `serve_stale_on_error` keeps serving it if that refresh fails. `tags` may be a
        function of the loaded value, for tags known only once it is loaded (an invalidation of those
        tags while the loader runs is then not detected, as with `set()` after a load).
        """
        item = self.tiers.find(key, True)
        if item is not None:
            return item.value  # type: ignore[no-any-return]
        value: T = await self.loader.load(
            self.tiers.key(key), key, loader, ttl, tags, stale_ttl, sensitive, serve_stale_on_error
        )
        return value

    async def query(
        self,
        session: Any,
        statement: Any,
        ttl: TTL | Unset = UNSET,
        *,
        key: str | None = None,
        tags: Iterable[str] | None = None,
    ) -> list[dict[str, Any]]:
        """The rows of a SQLAlchemy `select()` as dicts, cached with dependencies inferred from it, so a
        `CacheInvalidator` invalidates them when rows they read change (see `perfkit.cache.orm.query`)."""
        from perfkit.cache.orm.query import dependency_tags, has_writes, query_key, run_query

        if has_writes(session):  # it would read (and we would share) its own uncommitted rows
            return await run_query(session, statement)
        all_tags = [*dependency_tags(statement), *check_tags(tags)]
        rows: list[dict[str, Any]] = await self.get_or_set(
            key or query_key(statement), lambda: run_query(session, statement), ttl, tags=all_tags
        )
        return rows

    # -- decorator, sync facade, lifecycle ------------------------------------------------------------

    def cached(
        self,
        ttl: TTL | Unset = UNSET,
        *,
        key: str | None = None,
        key_prefix: str | None = None,
        tags: Iterable[str] | None = None,
        stale_ttl: TTL = None,
        serve_stale_on_error: bool = False,
        sensitive: bool = False,
        depends_on: Iterable[Any] | None = None,
    ) -> Callable[[Callable[..., Any]], CachedFunction]:
        """Cache a function's result, for async and plain functions alike (see `perfkit.cache.decorator`).

        `depends_on` lists what the result reads, for `perfkit.cache.orm.CacheInvalidator`: mapped
        classes (any change to the table) or `Model.column == "{param}"` / `.in_([...])` (changes to rows
        whose column had or gets that value)."""
        from perfkit.cache.decorator import make_cached

        return make_cached(
            self,
            depends_on=depends_on,
            ttl=ttl,
            key=key,
            key_prefix=key_prefix,
            tags=tags,
            stale_ttl=stale_ttl,
            serve_stale_on_error=serve_stale_on_error,
            sensitive=sensitive,
        )

    @property
    def sync(self) -> SyncCache:
        """A blocking facade over this cache for code that is not async (shares its L1 and stats)."""
        if self._sync is None:
            from perfkit.cache.sync import SyncCache

            self._sync = SyncCache(self)
        return self._sync

    def adopt_sync(self, facade: SyncCache) -> None:
        """Make `facade` this cache's `.sync` unless it already has one (called by `SyncCache`), so
        `.cached` on plain functions reuses it rather than starting another thread."""
        if self._sync is None:
            self._sync = facade

    @classmethod
    def from_config(cls, config: CacheConfig, observers: Iterable[CacheObserver] = ()) -> Cache:
        """A cache with settings already resolved by `CacheConfig.resolve(...)`."""
        cache = cls.__new__(cls)
        cache._assemble(config, observers, None)
        return cache

    def sibling(self) -> Cache:
        """Same configuration, L1, statistics and observers, own L2 connections: for another event loop."""
        sibling = Cache.__new__(Cache)
        sibling._assemble(self.config, (), self)
        return sibling

    async def ping(self) -> None:
        """Raise `BackendUnavailableError` unless the L2 answers (for health checks)."""
        if self.tiers.l2 is not None:
            await self.tiers.l2.ping()

    async def close(self) -> None:
        """Stop background work and close connections; safe to call twice."""
        await self.loader.close()
        await self.tiers.close()
        if self._sync is not None:
            self._sync.close()
            self._sync = None

    async def __aenter__(self) -> Cache:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        kinds = [f"{tier}={kind}" for tier, kind in self.tiers.kinds().items()]
        return f"<Cache {self.namespace!r} {', '.join(kinds)}>"
