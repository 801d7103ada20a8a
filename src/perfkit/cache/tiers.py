"""The tier engine: the L1 and L2 backends, the codec, L2 health, L1 coherence and the observers.

Everything that touches a tier goes through here, once. Its front (`perfkit.cache.front.Front`: key
names, `find` with the one fresh-hit check, `peek`, `fill` with the one `l1_ttl` clamp) runs without
I/O; `Tiers` adds the L2: `read` (an L2 read that copies a hit into L1), `write` (L2 then L1, with the
stale-set guard), `call` (any other L2 operation through the health check and the observers),
`tag_versions`, `incr` and `close`. Operations on many keys are in `perfkit.cache.bulk`; who observes,
in `perfkit.cache.observers`; the warning for unwatched ORM dependencies, in
`perfkit.cache.dependencies`. Each L2 backend supplies its own coherence (`backend.coherence(...)`).
`Cache`, the loader, the decorator and the sync facade are built on these names.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from perfkit.cache.backends import registry
from perfkit.cache.backends.base import CacheBackend
from perfkit.cache.backends.memory import MemoryBackend
from perfkit.cache.codec import Codec
from perfkit.cache.config import CacheConfig
from perfkit.cache.crypto import Encryptor
from perfkit.cache.dependencies import DependencyWatch
from perfkit.cache.front import Front
from perfkit.cache.health import Health
from perfkit.cache.observers import Observers
from perfkit.cache.stats import DROPPED, ERROR, HIT, MISS, OK, CacheObserver, StatsCounter
from perfkit.errors import BackendError, BackendUnavailableError, SerializationError

__all__ = ["ABSENT", "Tiers"]

T = TypeVar("T")
log = logging.getLogger("perfkit.cache")
_perf = time.perf_counter
_now = time.time
ABSENT: tuple[bool, Any, bool] = (False, None, False)  # what `read` returns for a miss


class Tiers(Front):
    """The L1 and/or L2 of one cache and what every operation on them shares.

    `shared`: another engine whose L1, statistics, observers and ORM invalidators this one shares (a
    sibling for another event loop, which needs its own L2 connections).
    """

    def __init__(
        self, config: CacheConfig, observers: Iterable[CacheObserver] = (), shared: Tiers | None = None
    ) -> None:
        l1: MemoryBackend | None = None
        self.l2: CacheBackend | None = None
        if config.backend.scheme == "memory":
            l1 = shared.l1 if shared else registry.create(config.url)  # type: ignore[assignment]
        else:
            self.l2 = registry.create(config.url, timeout=config.timeout, origin=os.urandom(6).hex())
            if config.l1 is not None:
                l1 = shared.l1 if shared else registry.create(config.l1.raw)  # type: ignore[assignment]
        tier = self.l2 if self.l2 is not None else l1
        assert tier is not None  # one of them is always made above
        prefix = tier.key_prefix(config.namespace)
        coherence = None
        if l1 is not None and self.l2 is not None:  # each L2 knows how to keep an L1 coherent
            coherence = self.l2.coherence(prefix, l1, config.coherence_interval)
        group = shared.observers if shared else Observers(config.namespace, StatsCounter(), observers)
        super().__init__(config, prefix, l1, coherence, group)
        self.config = config
        self.on_error = config.on_error
        self.check_values = config.check_values
        self.codec = Codec(
            config.serializer,
            compression=config.compression,
            compress_threshold=config.compress_threshold,
            encryptor=Encryptor(config.encryption_keys) if config.encryption_keys is not None else None,
            encrypt_all=config.encrypt_all,
            max_value_size=config.max_value_size,
            namespace=config.namespace,
        )
        self.health = Health(config.backend.redacted(), config.namespace)
        if l1 is not None and shared is None:
            l1.on_evict = group.evicted
        # the warning for ORM dependents nobody evicts; its invalidators are shared with siblings
        self.dependencies: DependencyWatch = DependencyWatch(
            prefix, config.namespace, shared.dependencies.invalidators if shared else None
        )
        self.invalidators = self.dependencies.invalidators

    def kinds(self) -> dict[str, str]:
        """The backend kind per tier, as reported in statistics."""
        tiers: dict[str, str] = {}
        if self.l1 is not None:
            tiers["l1"] = "memory"
        if self.l2 is not None:
            tiers["l2"] = self.l2.kind
        return tiers

    # -- L2 -------------------------------------------------------------------------------------------

    def available(self, op: str) -> bool:
        """False, with an error reported for `op`, while the L2 is in its post-failure backoff; with
        `on_error="raise"` that raises instead, for every operation (reads and writes too)."""
        if self.health.skip():
            self.observe(self.namespace, "l2", op, ERROR, 0.0)
            if self.on_error == "raise":
                raise BackendUnavailableError(f"cache L2 {self.health.where} is down")
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
        if tags and self.dependencies.armed:
            self.dependencies.check(tags, name or k)
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

    async def close(self) -> None:
        """Stop the coherence channel and close the L2's connections."""
        if self.coherence is not None:
            await self.coherence.close()
        if self.l2 is not None:
            await self.l2.close()
