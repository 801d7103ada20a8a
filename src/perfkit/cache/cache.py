"""`Cache`: the one async implementation of perfkit's cache; `SyncCache` is a facade over it.

A cache is one or two tiers. `Cache("memory://")` is a single in-process tier; `Cache("redis://…")` or
`Cache("sqlite:///…")` a single shared tier; `l1="memory://…"` puts an in-process tier in front of the
shared one, kept coherent across processes (see `coherence`). Reads try L1 then L2 and copy L2 hits
into L1; writes go to L2 then L1. Every tier operation is reported once to the observers (`stats`).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import secrets
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from perfkit.backends import parse_url
from perfkit.cache.backends import registry
from perfkit.cache.backends.base import CacheBackend
from perfkit.cache.backends.memory import Item, MemoryBackend
from perfkit.cache.codec import Codec
from perfkit.cache.coherence import ClusterTracker, Coherence, RedisTracker, SQLiteWatcher
from perfkit.cache.crypto import Encryptor
from perfkit.cache.health import Health
from perfkit.cache.keys import (
    DEFAULT_MAX_KEY_LENGTH,
    DEPENDENCY_TAG_PREFIX,
    TTL,
    UNSET,
    _Unset,
    check_tags,
    make_key,
    ttl_seconds,
)
from perfkit.cache.pattern import compile_pattern
from perfkit.cache.pattern import escape as escape_pattern
from perfkit.cache.stats import DROPPED, ERROR, HIT, MISS, OK, CacheObserver, CacheStats, StatsCounter
from perfkit.config import parse_choice, parse_duration, parse_size, parse_str, setting
from perfkit.errors import BackendError, BackendUnavailableError, ConfigurationError, SerializationError
from perfkit.serialization import Serializer, get_serializer

if TYPE_CHECKING:
    from perfkit.cache.decorator import CachedFunction
    from perfkit.cache.sync import SyncCache

T = TypeVar("T")
log = logging.getLogger("perfkit.cache")
_perf = time.perf_counter
_monotonic = time.monotonic
_now = time.time
_MISSING: Any = object()
_L1_HIT, _L1_MISS = ("l1", "get", HIT), ("l1", "get", MISS)


@dataclass(frozen=True)
class _LoadOptions:
    key: str  # as the caller wrote it, for error messages
    ttl: float | None
    tags: tuple[str, ...]
    stale_ttl: float | None
    sensitive: bool
    serve_stale_on_error: bool
    tags_of: Callable[[Any], Iterable[str]] | None = None  # tags known only from the loaded value


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
        default_ttl: TTL | _Unset = UNSET,
        serializer: str | Serializer | None = None,
        pickle_key: bytes | str | None = None,
        compression: str | _Unset | None = UNSET,
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
        _shared: Cache | None = None,
    ) -> None:
        self._config: dict[str, Any] = {
            k: v for k, v in locals().items() if k not in ("self", "_shared", "__class__")
        }
        self.url = setting("cache_url", url, "memory://", parse_str)
        self.namespace = setting("cache_namespace", namespace, "default", parse_str)
        if not self.namespace or not isinstance(self.namespace, str):
            raise ConfigurationError("namespace", "must be a non-empty string")
        env_ttl = setting("cache_default_ttl", None, 300.0, parse_duration)
        self.default_ttl = ttl_seconds(
            env_ttl if isinstance(default_ttl, _Unset) else default_ttl, "*", "default_ttl"
        )
        self.on_error = parse_choice(
            "on_error", setting("cache_on_error", on_error, "degrade", parse_str), ("degrade", "raise")
        )
        self.timeout = (
            parse_duration("timeout", timeout)
            if timeout is not None
            else setting("cache_timeout", None, 0.5, parse_duration)
        )
        self.lock_timeout = lock_timeout
        self.l1_ttl = ttl_seconds(l1_ttl, "*", "l1_ttl")
        self.max_key_length = max_key_length
        primary = parse_url(self.url, "url")
        if not isinstance(check_values, bool):
            raise ConfigurationError("check_values", f"must be True or False, not {check_values!r}")
        if not check_values and primary.scheme != "memory":
            raise ConfigurationError(
                "check_values", "False applies to a memory:// cache only: an L2 always serializes values"
            )
        self._check_values = check_values
        self._l1: MemoryBackend | None
        self._l2: CacheBackend | None
        origin = os.urandom(6).hex()
        if primary.scheme == "memory":
            if l1 is not None:
                raise ConfigurationError(
                    "l1", "an in-process cache needs no l1; give l1= only with a shared L2"
                )
            self._l1 = _shared._l1 if _shared else registry.create(self.url)  # type: ignore[assignment]
            self._l2 = None
        else:
            self._l2 = registry.create(self.url, timeout=self.timeout, origin=origin)
            if l1 is not None:
                l1_url = parse_url(l1, "l1")
                if l1_url.scheme != "memory":
                    raise ConfigurationError("l1", f"{l1!r}: the L1 tier must be a memory:// URL")
                self._l1 = _shared._l1 if _shared else registry.create(l1)  # type: ignore[assignment]
            else:
                self._l1 = None

        tier = self._l2 if self._l2 is not None else self._l1
        assert tier is not None  # one of them is always made above
        self._prefix = tier.key_prefix(self.namespace)
        self._max_direct = max_key_length - len(self._prefix)

        self._coherence: Coherence | None = None
        if self._l1 is not None and self._l2 is not None:
            if self._l2.kind == "redis":
                self._coherence = RedisTracker(primary, self._prefix, self._l1, self.timeout)
            elif self._l2.kind == "redis-cluster":
                self._coherence = ClusterTracker(primary, self._prefix, self._l1, self.timeout)
            elif self._l2.kind == "sqlite":
                self._coherence = SQLiteWatcher(self._l2, self._prefix, self._l1, coherence_interval)

        compression_value = setting("cache_compression", None, "zstd", parse_str)
        if not isinstance(compression, _Unset):
            compression_value = compression  # type: ignore[assignment]
        self._codec = Codec(
            get_serializer(
                serializer
                if serializer is not None
                else setting("cache_serializer", None, "msgpack", parse_str),
                pickle_key=pickle_key,
            ),
            compression=None if compression_value in (None, "none") else compression_value,
            compress_threshold=parse_size(
                "compress_threshold", compress_threshold if compress_threshold is not None else 1024
            ),
            encryptor=Encryptor(encryption_keys) if encryption_keys is not None else None,
            encrypt_all=encrypt_all,
            max_value_size=parse_size("max_value_size", max_value_size)
            if max_value_size is not None
            else setting("cache_max_value_size", None, 16 * 1024 * 1024, parse_size),
            namespace=self.namespace,
        )
        self._health = Health(primary.redacted(), self.namespace)
        self._stats: StatsCounter = _shared._stats if _shared else StatsCounter()
        self._observers: list[CacheObserver] = _shared._observers if _shared else [self._stats, *observers]
        self._observe: CacheObserver = self._stats if len(self._observers) == 1 else self._fanout
        self._counts = self._stats.counts if len(self._observers) == 1 else None
        self._poll = self._coherence.poll if isinstance(self._coherence, SQLiteWatcher) else None
        if self._l1 is not None and _shared is None:
            self._l1.on_evict = self._on_evict
        self._inflight: dict[str, asyncio.Task[Any]] = {}
        self._refreshing: dict[str, asyncio.Task[Any]] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._sync: SyncCache | None = None
        # who evicts this cache's ORM dependents on commit (`CacheInvalidator`s), shared with siblings
        self._invalidators: weakref.WeakSet[Any] = _shared._invalidators if _shared else weakref.WeakSet()
        self._dep_tag = self._prefix + DEPENDENCY_TAG_PREFIX
        self._dep_check = True  # until warned once: look for dependency tags nobody invalidates

    # -- ORM invalidation ---------------------------------------------------------------------------

    def add_invalidator(self, invalidator: object) -> None:
        """Record that `invalidator` evicts this cache's ORM dependents on commit (called by
        `perfkit.cache.orm.CacheInvalidator` when it starts watching sessions or engines)."""
        self._invalidators.add(invalidator)

    def remove_invalidator(self, invalidator: object) -> None:
        """Undo `add_invalidator` (the invalidator was closed)."""
        self._invalidators.discard(invalidator)

    @property
    def invalidated_on_commit(self) -> bool:
        """True while some `CacheInvalidator` watches sessions or engines on behalf of this cache."""
        return bool(self._invalidators)

    def _check_dependencies(self, tags: tuple[str, ...], key: str) -> None:
        """Warn once when a value depending on ORM rows is cached and no invalidator watches them."""
        if self._invalidators:
            return
        dep = next((t for t in tags if t.startswith(self._dep_tag)), None)
        if dep is None:
            return
        self._dep_check = False
        log.warning(
            "cache %r: key %r depends on database rows (tag %r) but no CacheInvalidator watches "
            "this cache, so commits will not evict it and it is served stale until its TTL. Pass "
            "engine= to perfkit.instrument(app, cache=..., engine=...) or wire "
            "perfkit.cache.orm.CacheInvalidator(cache).instrument(sessionmaker) (warned once per cache)",
            self.namespace,
            key,
            dep[len(self._prefix) :],
        )

    # -- observation ----------------------------------------------------------------------------------

    def add_observer(self, observer: CacheObserver) -> None:
        """Also report every tier operation to `observer` (used by perfkit's monitoring)."""
        self._observers.append(observer)
        self._observe = self._fanout
        self._counts = None
        if self._sync is not None:
            self._sync._inner._observe, self._sync._inner._counts = self._fanout, None

    def _fanout(self, namespace: str, tier: str, op: str, outcome: str, seconds: float) -> None:
        for observer in self._observers:
            observer(namespace, tier, op, outcome, seconds)

    def _on_evict(self, count: int) -> None:
        for _ in range(count):
            self._observe(self.namespace, "l1", "evict", OK, 0.0)

    def stats(self) -> CacheStats:
        """Hits, misses, sets, deletes, evictions, errors and mean latency per tier, and the hit ratio."""
        tiers: dict[str, str] = {}
        if self._l1 is not None:
            tiers["l1"] = "memory"
        if self._l2 is not None:
            tiers["l2"] = self._l2.kind
        return self._stats.snapshot(self.namespace, tiers)

    # -- keys and options -----------------------------------------------------------------------------

    def _key(self, key: object) -> str:
        if type(key) is str and key and len(key) <= self._max_direct:
            return self._prefix + key
        return make_key(self._prefix, key, self.max_key_length)

    def _ttl(self, ttl: object, key: str) -> float | None:
        return self.default_ttl if ttl is UNSET else ttl_seconds(ttl, key)

    def _tags(self, tags: Iterable[str] | None, key: str = "") -> tuple[str, ...]:
        return tuple(self._prefix + t for t in check_tags(tags, key))

    # -- tier plumbing --------------------------------------------------------------------------------

    def _l1_lookup(self, k: str) -> Item | None:
        # the hot path: an L1 hit is a dict lookup, so it is counted but not timed (two perf_counter
        # calls and an observer call would triple its cost, bench/cache.py), and when the built-in
        # counter is the only observer it is bumped inline
        l1 = self._l1
        if l1 is None:
            return None
        if self._poll is not None:
            self._poll()
        coherence = self._coherence
        if coherence is not None and not coherence.ready:
            return None
        item = l1.lookup(k)
        counts = self._counts
        if counts is not None:
            counts[_L1_MISS if item is None else _L1_HIT] += 1
        else:
            self._observe(self.namespace, "l1", "get", MISS if item is None else HIT, 0.0)
        return item

    def _failed(self, exc: BackendError, op: str) -> None:
        self._observe(self.namespace, "l2", op, ERROR, 0.0)
        self._health.failed(exc, op)
        if self.on_error == "raise":
            raise exc

    async def _l2_get(self, k: str) -> tuple[bool, Any, bool]:
        """(found, value, fresh) from L2, copying a hit into L1 unless an invalidation raced it."""
        l2 = self._l2
        if l2 is None:
            return False, None, False
        if self._health.skip():
            self._observe(self.namespace, "l2", "get", ERROR, 0.0)
            return False, None, False
        coherence = self._coherence
        if coherence is not None:
            coherence.start()
        token = coherence.token() if coherence is not None else 0
        t0 = _perf()
        try:
            raw = await l2.get(k)
        except BackendError as exc:
            self._failed(exc, "get")
            return False, None, False
        if self._health.down:
            self._health.ok()
        if raw is None:
            self._observe(self.namespace, "l2", "get", MISS, _perf() - t0)
            return False, None, False
        try:
            value, expires_at, fresh_until = self._codec.decode(k, raw)
        except SerializationError as exc:
            log.warning("cache %r: ignoring unreadable value: %s", self.namespace, exc)
            self._observe(self.namespace, "l2", "get", ERROR, _perf() - t0)
            return False, None, False
        self._observe(self.namespace, "l2", "get", HIT, _perf() - t0)
        now = _now()
        if self._l1 is not None and (coherence is None or coherence.may_fill(k, token)):
            left = expires_at - now if expires_at is not None else None
            if self.l1_ttl is not None:
                left = self.l1_ttl if left is None else min(left, self.l1_ttl)
            if left is None or left > 0:
                mono = _monotonic()
                self._l1.store_item(
                    k,
                    Item(
                        value,
                        mono + left if left is not None else None,
                        mono + (fresh_until - now) if fresh_until is not None else None,
                        (),
                    ),
                )
        return True, value, fresh_until is None or fresh_until > now

    async def _store(
        self,
        k: str,
        value: Any,
        ttl: float | None,
        tags: tuple[str, ...],
        stale_ttl: float | None = None,
        sensitive: bool = False,
        name: str = "",
        expect: list[int] | None = None,
    ) -> bool:
        """Write to L2 then L1. With `expect` (the tag versions read before loading) a value whose tags
        were invalidated meanwhile is dropped, not stored: it may come from pre-commit data."""
        storage_ttl = ttl + stale_ttl if (ttl is not None and stale_ttl) else ttl
        if self._dep_check and tags:
            self._check_dependencies(tags, name or k)
        l2 = self._l2
        if l2 is not None:
            now = _now()
            blob = self._codec.encode(
                k,
                value,
                expires_at=now + storage_ttl if storage_ttl is not None else None,
                fresh_until=now + ttl if (stale_ttl and ttl is not None) else None,
                sensitive=sensitive,
                name=name,
            )
            if not self._health.skip():
                t0 = _perf()
                token = self._coherence.token() if self._coherence is not None else 0
                try:
                    stored = await l2.set(k, blob, storage_ttl, tags, expect)
                    self._observe(self.namespace, "l2", "set", OK if stored else DROPPED, _perf() - t0)
                    if self._health.down:
                        self._health.ok()
                    if not stored:
                        return False
                    if self._coherence is not None and not self._coherence.may_fill(k, token):
                        return True  # a newer write was reported while ours was in flight: no L1 copy
                except BackendError as exc:
                    self._failed(exc, "set")
            else:
                self._observe(self.namespace, "l2", "set", ERROR, 0.0)
        else:
            if self._check_values:  # what an L2 would refuse, refused here too (see `check_values`)
                self._codec.check(k, value, name)
            if expect is not None and self._l1 is not None and self._l1.versions(tags) != expect:
                self._observe(self.namespace, "l1", "set", DROPPED, 0.0)
                return False
        l1 = self._l1
        if l1 is not None:
            l1_ttl = storage_ttl
            if self.l1_ttl is not None:
                l1_ttl = self.l1_ttl if l1_ttl is None else min(l1_ttl, self.l1_ttl)
            l1.store(k, value, l1_ttl, tags, fresh_for=ttl if stale_ttl else None)
            self._observe(self.namespace, "l1", "set", OK, 0.0)
        return True

    async def _l2_call(
        self, op: str, call: Callable[[CacheBackend], Awaitable[T]], fallback: T, *, always: bool = False
    ) -> T:
        """One L2 operation through the health check and the metrics hook. `always`: removals are sent
        even while the L2 is in its post-failure backoff, since skipping one leaves stale data behind."""
        l2 = self._l2
        if l2 is None:
            return fallback
        if self._health.skip() and not always:
            self._observe(self.namespace, "l2", op, ERROR, 0.0)
            if self.on_error == "raise":
                raise BackendUnavailableError(f"cache L2 {self._health.where} is down")
            return fallback
        t0 = _perf()
        try:
            result = await call(l2)
        except BackendError as exc:
            self._failed(exc, op)
            return fallback
        if self._health.down:
            self._health.ok()
        self._observe(self.namespace, "l2", op, OK, _perf() - t0)
        return result

    # -- the public API -------------------------------------------------------------------------------

    async def get(self, key: str, default: Any = None) -> Any:
        """The cached value, or `default`. A cached None is a hit and returns None."""
        k = self._key(key)
        item = self._l1_lookup(k)
        if item is not None:
            return item.value
        if self._l2 is None:
            return default
        found, value, _ = await self._l2_get(k)
        return value if found else default

    async def exists(self, key: str) -> bool:
        k = self._key(key)
        if self._l1_lookup(k) is not None:
            return True
        return await self._l2_call("exists", lambda b: b.exists(k), False)

    async def set(
        self,
        key: str,
        value: Any,
        ttl: TTL | _Unset = UNSET,
        *,
        tags: Iterable[str] | None = None,
        sensitive: bool = False,
    ) -> None:
        """Store `value` for `ttl` seconds (None: no expiry; default: the cache's `default_ttl`)."""
        k = self._key(key)
        await self._store(k, value, self._ttl(ttl, key), self._tags(tags, key), sensitive=sensitive, name=key)

    async def delete(self, key: str) -> bool:
        """Remove `key`; True when it was there."""
        k = self._key(key)
        removed = self._l1.remove((k,)) if self._l1 is not None else 0
        removed2 = await self._l2_call("delete", lambda b: b.delete([k]), 0, always=True)
        return bool(removed or removed2)

    async def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """The cached values of `keys` that are present, as {key: value}; absent keys are left out."""
        keys = list(keys)
        out: dict[str, Any] = {}
        pending: list[tuple[str, str]] = []
        for key in keys:
            k = self._key(key)
            item = self._l1_lookup(k)
            if item is not None:
                out[key] = item.value
            else:
                pending.append((key, k))
        if pending and self._l2 is not None:
            nothing: list[Any] = [None] * len(pending)
            raws = await self._l2_call("get", lambda b: b.get_many([k for _, k in pending]), nothing)
            for (key, k), raw in zip(pending, raws, strict=True):
                if raw is None:
                    continue
                try:
                    out[key] = self._codec.decode(k, raw)[0]
                except SerializationError as exc:
                    log.warning("cache %r: ignoring unreadable value: %s", self.namespace, exc)
        return out

    async def set_many(
        self,
        mapping: Mapping[str, Any],
        ttl: TTL | _Unset = UNSET,
        *,
        tags: Iterable[str] | None = None,
        sensitive: bool = False,
    ) -> None:
        """Store every item of `mapping` with the same ttl and tags, in one round trip on Redis."""
        ttl_s = self._ttl(ttl, "*")
        tag_t = self._tags(tags)
        items = [(self._key(key), value) for key, value in mapping.items()]
        if self._dep_check and tag_t and items:
            self._check_dependencies(tag_t, next(iter(mapping)))
        if self._l2 is not None:
            now = _now()
            blobs = [
                (
                    k,
                    self._codec.encode(
                        k, v, expires_at=now + ttl_s if ttl_s else None, sensitive=sensitive, name=key
                    ),
                )
                for (k, v), key in zip(items, mapping, strict=True)
            ]
            await self._l2_call("set", lambda b: b.set_many(blobs, ttl_s, tag_t), None)
        elif self._check_values:
            for (k, v), key in zip(items, mapping, strict=True):
                self._codec.check(k, v, key)
        if self._l1 is not None:
            for k, v in items:
                self._l1.store(
                    k, v, ttl_s if self.l1_ttl is None else min(ttl_s or self.l1_ttl, self.l1_ttl), tag_t
                )

    async def incr(self, key: str, delta: int = 1, ttl: TTL | _Unset = UNSET) -> int:
        """Add `delta` to the integer at `key` (created at `delta`, with `ttl`); atomic on every backend."""
        if not isinstance(delta, int) or isinstance(delta, bool):
            raise TypeError(f"incr delta for key {key!r} must be an int, not {type(delta).__name__}")
        k = self._key(key)
        ttl_s = self._ttl(ttl, key)
        try:
            if self._l2 is None:
                assert self._l1 is not None
                return await self._l1.incr(k, delta, ttl_s)
            if self._l1 is not None:
                self._l1.remove((k,))
            if self._health.skip():
                raise BackendUnavailableError(
                    f"cache L2 {self._health.where} is down; incr cannot be answered"
                )
            try:
                return await self._l2.incr(k, delta, ttl_s)
            except BackendError as exc:
                self._health.failed(exc, "incr")
                raise
        except SerializationError:
            raise SerializationError(f"cannot incr key {key!r}: it does not hold an integer") from None

    async def invalidate_tags(self, tags: Iterable[str]) -> int:
        """Remove every key carrying any of `tags`; returns how many were removed."""
        tag_t = self._tags(tags)
        # chunked: a tag on 100k keys must not hold the event loop for the whole removal
        removed = await self._l1.remove_tags_async(tag_t) if self._l1 is not None else 0
        t0 = _perf()
        gone: list[str] = []
        removed2 = await self._l2_call("invalidate", lambda b: b.invalidate_tags(tag_t, gone), 0, always=True)
        if self._l1 is not None and self._l2 is not None:
            # L1 copies filled from L2 reads carry no tags: evict the removed keys by name, now,
            # rather than when the coherence channel reports them (read-your-invalidation)
            await self._l1.remove_async(gone)
            if self._coherence is not None:
                for key in gone:
                    self._coherence.invalidated(key)
                self._coherence.poll(force=True)  # SQLite: apply the change log rows just written
        self._observe(self.namespace, "all", "invalidate", OK, _perf() - t0)
        return max(removed, removed2)

    async def delete_match(self, pattern: str) -> int:
        """Remove the keys of this namespace matching `pattern`: `*`, `?`, `[...]`, and `\\` to quote
        (see `perfkit.cache.pattern`); every backend removes the same keys. SCAN-based on Redis."""
        if not isinstance(pattern, str) or not pattern:
            raise TypeError("delete_match pattern must be a non-empty string")
        compile_pattern(pattern)  # a malformed pattern is refused before any backend sees it
        full = escape_pattern(self._prefix) + pattern
        removed = self._l1.remove_match(full) if self._l1 is not None else 0
        removed2 = await self._l2_call("delete", lambda b: b.delete_match(full), 0, always=True)
        return max(removed, removed2)

    async def clear(self) -> int:
        """Remove every key of this namespace (and nothing outside it)."""
        removed = self._l1.remove_prefix(self._prefix) if self._l1 is not None else 0
        removed2 = await self._l2_call("delete", lambda b: b.clear(self._prefix), 0, always=True)
        return max(removed, removed2)

    async def get_or_set(
        self,
        key: str,
        loader: Callable[[], T | Awaitable[T]],
        ttl: TTL | _Unset = UNSET,
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
        k = self._key(key)
        item = self._l1_lookup(k)
        if item is not None and (item.fresh_until is None or item.fresh_until > _monotonic()):
            return item.value  # type: ignore[no-any-return]
        value: T = await self._get_or_load(
            k, item, key, loader, ttl, tags, stale_ttl, sensitive, serve_stale_on_error
        )
        return value

    async def _get_or_load(
        self,
        k: str,
        item: Item | None,
        key: str,
        loader: Callable[[], Any],
        ttl: object,
        tags: Iterable[str] | Callable[[Any], Iterable[str]] | None,
        stale_ttl: TTL,
        sensitive: bool,
        serve_stale_on_error: bool,
    ) -> Any:
        """get_or_set past a fresh L1 hit (shared with the decorator's own fast path)."""
        if item is not None:  # stale: answer now, refresh once in the background
            self._refresh(
                k,
                loader,
                self._options(key, ttl, tags, stale_ttl, sensitive, serve_stale_on_error),
                item.value,
            )
            return item.value
        task = self._inflight.get(k)
        if task is None:
            opts = self._options(key, ttl, tags, stale_ttl, sensitive, serve_stale_on_error)
            task = self._start(k, self._fetch_or_load(k, loader, opts))
        # shield: a caller that is cancelled (its client went away) must not cancel everyone's load
        return await asyncio.shield(task)

    def _options(
        self,
        key: str,
        ttl: object,
        tags: Iterable[str] | Callable[[Any], Iterable[str]] | None,
        stale_ttl: TTL,
        sensitive: bool,
        serve_stale_on_error: bool,
    ) -> _LoadOptions:
        tags_of = tags if callable(tags) else None
        return _LoadOptions(
            key,
            self._ttl(ttl, key),
            () if tags_of is not None else self._tags(tags, key),  # type: ignore[arg-type]  # not callable here
            ttl_seconds(stale_ttl, key, "stale_ttl"),
            sensitive,
            serve_stale_on_error,
            tags_of,
        )

    async def _fetch_or_load(self, k: str, loader: Callable[[], Any], opts: _LoadOptions) -> Any:
        """One per key at a time: the L2 read (so 1,000 callers make one round trip), then the load."""
        found, value, fresh = await self._l2_get(k)
        if found:
            if not fresh:
                self._refresh(k, loader, opts, value)
            return value
        return await self._load(k, loader, opts, _MISSING)

    # -- stampede protection --------------------------------------------------------------------------

    def _start(self, k: str, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._inflight[k] = task

        def done(t: asyncio.Task[Any]) -> None:
            if self._inflight.get(k) is t:
                del self._inflight[k]

        task.add_done_callback(done)
        return task

    def _refresh(self, k: str, loader: Callable[[], Any], opts: _LoadOptions, stale: Any) -> None:
        # kept apart from _inflight: readers of a stale value must not queue behind its refresh
        if k in self._refreshing:
            return
        task = asyncio.ensure_future(self._load(k, loader, opts, stale))
        self._refreshing[k] = task
        self._background.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._background.discard(t)
            if self._refreshing.get(k) is t:
                del self._refreshing[k]
            if not t.cancelled() and t.exception() is not None:
                log.warning("cache %r: background refresh of %r failed: %s", self.namespace, k, t.exception())

        task.add_done_callback(done)

    async def _load(self, k: str, loader: Callable[[], Any], opts: _LoadOptions, stale: Any) -> Any:
        l2 = self._l2
        if l2 is None or not l2.shared or self._health.skip():
            return await self._compute(k, loader, opts, stale)
        token = secrets.token_hex(8)
        deadline = _monotonic() + 2 * self.lock_timeout
        delay = 0.002
        while True:
            try:
                got = await l2.acquire_lock(k, token, self.lock_timeout)
            except BackendError as exc:
                self._failed(exc, "lock")
                return await self._compute(k, loader, opts, stale)
            if got:
                try:
                    if stale is _MISSING:  # someone may have filled it while we queued for the lock
                        found, value, fresh = await self._l2_get(k)
                        if found and fresh:
                            return value
                    return await self._compute(k, loader, opts, stale)
                finally:
                    with contextlib.suppress(BackendError):
                        await l2.release_lock(k, token)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)
            found, value, fresh = await self._l2_get(k)
            if found and fresh:
                return value
            if _monotonic() > deadline:  # the holder is stuck: load rather than wait forever
                return await self._compute(k, loader, opts, stale)

    async def _tag_versions(self, tags: tuple[str, ...]) -> list[int] | None:
        if not tags:
            return None
        if self._l2 is None:
            return self._l1.versions(tags) if self._l1 is not None else None
        nothing: list[int] | None = None
        return await self._l2_call("versions", lambda b: b.tag_versions(tags), nothing)

    async def _compute(self, k: str, loader: Callable[[], Any], opts: _LoadOptions, stale: Any) -> Any:
        expect = await self._tag_versions(opts.tags)
        try:
            value = loader()
            if inspect.isawaitable(value):
                value = await value
        except Exception:
            if opts.serve_stale_on_error and stale is not _MISSING:
                log.warning(
                    "cache %r: loader for %r failed; serving the stale value",
                    self.namespace,
                    k,
                    exc_info=True,
                )
                return stale
            raise
        tags = opts.tags if opts.tags_of is None else self._tags(opts.tags_of(value), opts.key)
        await self._store(
            k, value, opts.ttl, tags, opts.stale_ttl, opts.sensitive, name=opts.key, expect=expect
        )
        return value

    async def query(
        self,
        session: Any,
        statement: Any,
        ttl: TTL | _Unset = UNSET,
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
        ttl: TTL | _Unset = UNSET,
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

    def _sibling(self) -> Cache:
        """Same configuration and L1, own L2 connections: for use from another event loop."""
        return Cache(**self._config, _shared=self)

    async def ping(self) -> None:
        """Raise `BackendUnavailableError` unless the L2 answers (for health checks)."""
        if self._l2 is not None:
            await self._l2.ping()

    async def close(self) -> None:
        """Stop background work and close connections; safe to call twice."""
        for task in list(self._background) + list(self._inflight.values()):
            task.cancel()
        for task in list(self._background) + list(self._inflight.values()):
            with contextlib.suppress(BaseException):
                await task
        if self._coherence is not None:
            await self._coherence.close()
        if self._l2 is not None:
            await self._l2.close()
        if self._sync is not None:
            self._sync.close()
            self._sync = None

    async def __aenter__(self) -> Cache:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        kinds = ([] if self._l1 is None else ["l1=memory"]) + (
            [] if self._l2 is None else [f"l2={self._l2.kind}"]
        )
        return f"<Cache {self.namespace!r} {', '.join(kinds)}>"
