"""The tier engine: the L1 and L2 backends, the codec, L2 health, L1 coherence and the observers.

Everything that touches a tier goes through here, once: `find` (the counted L1 lookup, the hot path,
with the one fresh-hit check), `peek` (the stale item for the loader), `read` (an L2 read that copies
a hit into L1), `write` (L2 then L1, with the stale-set guard), `fill` (the one L1 write, with the one
`l1_ttl` clamp) and `call` (any other L2 operation through the health check and the observers).
`Cache`, the loader, the decorator and the sync facade are built on these names.
"""

from __future__ import annotations

import logging
import os
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

from perfkit.cache.backends import registry
from perfkit.cache.backends.base import CacheBackend
from perfkit.cache.backends.memory import Item, MemoryBackend
from perfkit.cache.codec import Codec
from perfkit.cache.coherence import Coherence
from perfkit.cache.config import CacheConfig
from perfkit.cache.crypto import Encryptor
from perfkit.cache.health import Health
from perfkit.cache.keys import DEPENDENCY_TAG_PREFIX, UNSET, check_tags, make_key, ttl_seconds
from perfkit.cache.stats import DROPPED, ERROR, HIT, MISS, OK, CacheObserver, StatsCounter
from perfkit.errors import BackendError, BackendUnavailableError, SerializationError

T = TypeVar("T")
log = logging.getLogger("perfkit.cache")
_perf = time.perf_counter
_monotonic = time.monotonic
_now = time.time
_L1_HIT, _L1_MISS = ("l1", "get", HIT), ("l1", "get", MISS)
ABSENT: tuple[bool, Any, bool] = (False, None, False)  # what `read` returns for a miss


class Tiers:
    """The L1 and/or L2 of one cache and what every operation on them shares.

    `shared`: another engine whose L1, statistics, observers and ORM invalidators this one shares (a
    sibling for another event loop, which needs its own L2 connections).
    """

    def __init__(
        self, config: CacheConfig, observers: Iterable[CacheObserver] = (), shared: Tiers | None = None
    ) -> None:
        self.config = config
        self.namespace = namespace = config.namespace
        self.default_ttl = config.default_ttl
        self.l1_ttl = config.l1_ttl
        self.on_error = config.on_error
        self.check_values = config.check_values
        self.l1: MemoryBackend | None = None
        self.l2: CacheBackend | None = None
        if config.backend.scheme == "memory":
            self.l1 = shared.l1 if shared else registry.create(config.url)  # type: ignore[assignment]
        else:
            self.l2 = registry.create(config.url, timeout=config.timeout, origin=os.urandom(6).hex())
            if config.l1 is not None:
                self.l1 = shared.l1 if shared else registry.create(config.l1.raw)  # type: ignore[assignment]
        tier = self.l2 if self.l2 is not None else self.l1
        assert tier is not None  # one of them is always made above
        self.prefix = prefix = tier.key_prefix(namespace)
        self._max_key_length = config.max_key_length
        self._max_direct = config.max_key_length - len(prefix)

        self.coherence: Coherence | None = None
        if self.l1 is not None and self.l2 is not None:  # each L2 knows how to keep an L1 coherent
            self.coherence = self.l2.coherence(prefix, self.l1, config.coherence_interval)
        self._poll = self.coherence.poll if self.coherence is not None and self.coherence.polls else None

        self.codec = Codec(
            config.serializer,
            compression=config.compression,
            compress_threshold=config.compress_threshold,
            encryptor=Encryptor(config.encryption_keys) if config.encryption_keys is not None else None,
            encrypt_all=config.encrypt_all,
            max_value_size=config.max_value_size,
            namespace=namespace,
        )
        self.health = Health(config.backend.redacted(), namespace)
        self.stats: StatsCounter = shared.stats if shared else StatsCounter()
        self._observers: list[CacheObserver] = shared._observers if shared else [self.stats, *observers]
        # every engine sharing these observers, so `add_observer` reaches the siblings too
        self._group: weakref.WeakSet[Tiers] = shared._group if shared else weakref.WeakSet()
        self._group.add(self)
        self.observe: CacheObserver = self.stats
        self._counts: Any = None
        self._rewire()
        if self.l1 is not None and shared is None:
            self.l1.on_evict = self._on_evict
        # who evicts this cache's ORM dependents on commit (`CacheInvalidator`s), shared with siblings
        self.invalidators: weakref.WeakSet[Any] = shared.invalidators if shared else weakref.WeakSet()
        self._dep_tag = prefix + DEPENDENCY_TAG_PREFIX
        self._dep_check = True  # until warned once: look for dependency tags nobody invalidates

    # -- observation ----------------------------------------------------------------------------------

    def add_observer(self, observer: CacheObserver) -> None:
        """Also report every tier operation to `observer`, in this engine and those sharing its L1."""
        self._observers.append(observer)
        for tiers in self._group:
            tiers._rewire()

    def _rewire(self) -> None:
        # the built-in counter alone: call it directly and bump L1 hits inline (the hot path)
        alone = len(self._observers) == 1
        self.observe = self.stats if alone else self._fanout
        self._counts = self.stats.counts if alone else None

    def _fanout(self, namespace: str, tier: str, op: str, outcome: str, seconds: float) -> None:
        for observer in self._observers:
            observer(namespace, tier, op, outcome, seconds)

    def _on_evict(self, count: int) -> None:
        for _ in range(count):
            self.observe(self.namespace, "l1", "evict", OK, 0.0)

    def kinds(self) -> dict[str, str]:
        """The backend kind per tier, as reported in statistics."""
        tiers: dict[str, str] = {}
        if self.l1 is not None:
            tiers["l1"] = "memory"
        if self.l2 is not None:
            tiers["l2"] = self.l2.kind
        return tiers

    # -- keys, tags, ttls -----------------------------------------------------------------------------

    def key(self, key: object) -> str:
        """The stored name of `key`: namespaced, validated, hashed when too long."""
        if type(key) is str and key and len(key) <= self._max_direct:
            return self.prefix + key
        return make_key(self.prefix, key, self._max_key_length)

    def ttl(self, ttl: object, key: str) -> float | None:
        """Seconds for a ttl argument; UNSET: the cache's `default_ttl`."""
        return self.default_ttl if ttl is UNSET else ttl_seconds(ttl, key)

    def tags(self, tags: Iterable[str] | None, key: str = "") -> tuple[str, ...]:
        """`tags` checked and namespaced."""
        if not tags:  # the common call: no tags
            return ()
        return tuple(self.prefix + t for t in check_tags(tags, key))

    def check_dependencies(self, tags: tuple[str, ...], key: str) -> None:
        """Warn once when a value depending on ORM rows is cached and no invalidator watches them."""
        if not self._dep_check or not tags or self.invalidators:
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
            dep[len(self.prefix) :],
        )

    # -- L1 -------------------------------------------------------------------------------------------

    def find(self, key: str, fresh: bool = False) -> Item | None:
        """The L1 item for `key`, counted as an L1 hit or miss; None without an L1. `fresh`: None for a
        stale item too (one past its `ttl` but within `stale_ttl`; `peek` then returns it).

        The hot path: a hit is a dict lookup, so it is counted but not timed (two perf_counter calls
        and an observer call would triple its cost, benchmarks/cache.py)."""
        l1 = self.l1
        if l1 is None:
            return None
        if type(key) is str and key and len(key) <= self._max_direct:
            k = self.prefix + key
        else:
            k = make_key(self.prefix, key, self._max_key_length)
        if self._poll is not None:
            self._poll()
        coherence = self.coherence
        if coherence is not None and not coherence.ready:
            return None
        item = l1.lookup(k)
        counts = self._counts
        if counts is not None:
            counts[_L1_MISS if item is None else _L1_HIT] += 1
        else:
            self.observe(self.namespace, "l1", "get", MISS if item is None else HIT, 0.0)
        if fresh and item is not None and item.fresh_until is not None and item.fresh_until <= _monotonic():
            return None  # the one fresh-hit check: stale, to be served while it is refreshed
        return item

    def peek(self, k: str) -> Item | None:
        """The L1 item of stored name `k` (`key(...)`), fresh or stale, not counted: for the loader,
        after `find(key, fresh=True)` counted the lookup and found no fresh item."""
        l1 = self.l1
        if l1 is None or (self.coherence is not None and not self.coherence.ready):
            return None
        return l1.lookup(k)

    def fill(
        self,
        k: str,
        value: Any,
        ttl: float | None,
        tags: tuple[str, ...] = (),
        fresh_for: float | None = None,
    ) -> None:
        """The one L1 write: for `ttl` seconds (None: no expiry), capped by `l1_ttl`."""
        l1 = self.l1
        if l1 is None:
            return
        cap = self.l1_ttl
        if cap is not None:
            ttl = cap if ttl is None else min(ttl, cap)
        if ttl is None or ttl > 0:
            l1.store(k, value, ttl, tags, fresh_for)

    # -- L2 -------------------------------------------------------------------------------------------

    def available(self, op: str) -> bool:
        """False, with an error reported for `op`, while the L2 is in its post-failure backoff."""
        if self.health.skip():
            self.observe(self.namespace, "l2", op, ERROR, 0.0)
            return False
        return True

    def failed(self, exc: BackendError, op: str) -> None:
        """Report an L2 failure of `op`; re-raised when `on_error="raise"`."""
        self.observe(self.namespace, "l2", op, ERROR, 0.0)
        self.health.failed(exc, op)
        if self.on_error == "raise":
            raise exc

    async def call(
        self, op: str, call: Callable[[CacheBackend], Awaitable[T]], fallback: T, *, always: bool = False
    ) -> T:
        """One L2 operation through the health check and the observers. `always`: removals are sent
        even while the L2 is in its post-failure backoff, since skipping one leaves stale data behind."""
        l2 = self.l2
        if l2 is None:
            return fallback
        if not always and not self.available(op):
            if self.on_error == "raise":
                raise BackendUnavailableError(f"cache L2 {self.health.where} is down")
            return fallback
        t0 = _perf()
        try:
            result = await call(l2)
        except BackendError as exc:
            self.failed(exc, op)
            return fallback
        if self.health.down:
            self.health.ok()
        self.observe(self.namespace, "l2", op, OK, _perf() - t0)
        return result

    async def read(self, k: str) -> tuple[bool, Any, bool]:
        """(found, value, fresh) from L2, copying a hit into L1 unless an invalidation raced it."""
        l2 = self.l2
        if l2 is None or not self.available("get"):
            return ABSENT
        coherence = self.coherence
        token = 0
        if coherence is not None:
            coherence.start()
            token = coherence.token()
        t0 = _perf()
        try:
            raw = await l2.get(k)
        except BackendError as exc:
            self.failed(exc, "get")
            return ABSENT
        if self.health.down:
            self.health.ok()
        if raw is None:
            self.observe(self.namespace, "l2", "get", MISS, _perf() - t0)
            return ABSENT
        try:
            value, expires_at, fresh_until = self.codec.decode(k, raw)
        except SerializationError as exc:
            log.warning("cache %r: ignoring unreadable value: %s", self.namespace, exc)
            self.observe(self.namespace, "l2", "get", ERROR, _perf() - t0)
            return ABSENT
        self.observe(self.namespace, "l2", "get", HIT, _perf() - t0)
        now = _now()
        if self.l1 is not None and (coherence is None or coherence.may_fill(k, token)):
            self.fill(
                k,
                value,
                expires_at - now if expires_at is not None else None,
                fresh_for=fresh_until - now if fresh_until is not None else None,
            )
        return True, value, fresh_until is None or fresh_until > now

    async def write(
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
            self.check_dependencies(tags, name or k)
        l2 = self.l2
        if l2 is not None:
            now = _now()
            blob = self.codec.encode(
                k,
                value,
                expires_at=now + storage_ttl if storage_ttl is not None else None,
                fresh_until=now + ttl if (stale_ttl and ttl is not None) else None,
                sensitive=sensitive,
                name=name,
            )
            if self.available("set"):
                t0 = _perf()
                coherence = self.coherence
                token = coherence.token() if coherence is not None else 0
                try:
                    stored = await l2.set(k, blob, storage_ttl, tags, expect)
                    self.observe(self.namespace, "l2", "set", OK if stored else DROPPED, _perf() - t0)
                    if self.health.down:
                        self.health.ok()
                    if not stored:
                        return False
                    if coherence is not None and not coherence.may_fill(k, token):
                        return True  # a newer write was reported while ours was in flight: no L1 copy
                except BackendError as exc:
                    self.failed(exc, "set")
        else:
            if self.check_values:  # what an L2 would refuse, refused here too (see `check_values`)
                self.codec.check(k, value, name)
            if expect is not None and self.l1 is not None and self.l1.versions(tags) != expect:
                self.observe(self.namespace, "l1", "set", DROPPED, 0.0)
                return False
        if self.l1 is not None:
            self.fill(k, value, storage_ttl, tags, fresh_for=ttl if stale_ttl else None)
            self.observe(self.namespace, "l1", "set", OK, 0.0)
        return True

    async def tag_versions(self, tags: tuple[str, ...]) -> list[int] | None:
        """The current versions of `tags` (None for no tags), for `write(expect=...)`."""
        if not tags:
            return None
        if self.l2 is None:
            return self.l1.versions(tags) if self.l1 is not None else None
        nothing: list[int] | None = None
        return await self.call("versions", lambda b: b.tag_versions(tags), nothing)

    # -- bulk operations, counters, invalidation ------------------------------------------------------

    async def read_many(self, keys: list[str]) -> dict[str, Any]:
        """{key: value} of the `keys` present: L1 first, then the rest from L2 in one round trip."""
        out: dict[str, Any] = {}
        pending: list[tuple[str, str]] = []
        for key in keys:
            item = self.find(key)
            if item is not None:
                out[key] = item.value
            else:
                pending.append((key, self.key(key)))
        if pending and self.l2 is not None:
            coherence = self.coherence
            token = 0
            if coherence is not None:  # as `read`: L2 hits are copied into L1 unless an invalidation raced
                coherence.start()
                token = coherence.token()
            nothing: list[Any] = [None] * len(pending)
            raws = await self.call("get", lambda b: b.get_many([k for _, k in pending]), nothing)
            now = _now()
            for (key, k), raw in zip(pending, raws, strict=True):
                if raw is None:
                    continue
                try:
                    value, expires_at, _ = self.codec.decode(k, raw)
                except SerializationError as exc:
                    log.warning("cache %r: ignoring unreadable value: %s", self.namespace, exc)
                    continue
                out[key] = value
                if coherence is not None and coherence.may_fill(k, token):
                    self.fill(k, value, expires_at - now if expires_at is not None else None)
        return out

    async def write_many(
        self, mapping: Mapping[str, Any], ttl: float | None, tags: tuple[str, ...], sensitive: bool
    ) -> None:
        """Store every item of `mapping` (keys as the caller wrote them) with one ttl and tag set."""
        items = [(self.key(key), value) for key, value in mapping.items()]
        if tags and items:
            self.check_dependencies(tags, next(iter(mapping)))
        if self.l2 is not None:
            now = _now()
            expires_at = now + ttl if ttl else None
            blobs = [
                (k, self.codec.encode(k, v, expires_at=expires_at, sensitive=sensitive, name=key))
                for (k, v), key in zip(items, mapping, strict=True)
            ]
            await self.call("set", lambda b: b.set_many(blobs, ttl, tags), None)
        elif self.check_values:
            for (k, v), key in zip(items, mapping, strict=True):
                self.codec.check(k, v, key)
        for k, v in items:
            self.fill(k, v, ttl, tags)

    async def incr(self, k: str, delta: int, ttl: float | None) -> int:
        """Add `delta` to the integer at stored name `k`. Unlike reads, it has no answer to degrade
        to: it raises while the L2 is down."""
        l2 = self.l2
        if l2 is None:
            assert self.l1 is not None  # a cache without L2 is an L1
            return await self.l1.incr(k, delta, ttl)
        if self.l1 is not None:
            self.l1.remove((k,))
        if self.health.skip():
            raise BackendUnavailableError(f"cache L2 {self.health.where} is down; incr cannot be answered")
        try:
            return await l2.incr(k, delta, ttl)
        except BackendError as exc:
            self.health.failed(exc, "incr")
            raise

    async def invalidate(self, tags: tuple[str, ...]) -> int:
        """Remove every key carrying any of the (namespaced) `tags`; how many were removed."""
        l1 = self.l1
        # chunked: a tag on 100k keys must not hold the event loop for the whole removal
        removed = await l1.remove_tags_async(tags) if l1 is not None else 0
        t0 = _perf()
        gone: list[str] = []
        removed2 = await self.call("invalidate", lambda b: b.invalidate_tags(tags, gone), 0, always=True)
        if l1 is not None and self.l2 is not None:
            # L1 copies filled from L2 reads carry no tags: evict the removed keys by name, now,
            # rather than when the coherence channel reports them (read-your-invalidation)
            await l1.remove_async(gone)
            coherence = self.coherence
            if coherence is not None:
                for key in gone:
                    coherence.invalidated(key)
                coherence.poll(force=True)  # SQLite: apply the change log rows just written
        self.observe(self.namespace, "all", "invalidate", OK, _perf() - t0)
        return max(removed, removed2)

    async def close(self) -> None:
        """Stop the coherence channel and close the L2's connections."""
        if self.coherence is not None:
            await self.coherence.close()
        if self.l2 is not None:
            await self.l2.close()
