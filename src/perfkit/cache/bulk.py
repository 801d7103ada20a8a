"""The tier operations on many keys at once: `read_many`, `write_many` and tag invalidation.

Functions over one `perfkit.cache.tiers.Tiers`, built on its public names (`find`, `key`, `call`,
`fill`, the codec, the coherence and the observers), for `Cache.get_many`, `Cache.set_many` and
`Cache.invalidate_tags`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from perfkit.cache.stats import OK
from perfkit.errors import SerializationError

if TYPE_CHECKING:
    from perfkit.cache.tiers import Tiers

__all__ = ["invalidate", "read_many", "write_many"]

log = logging.getLogger("perfkit.cache")


async def read_many(tiers: Tiers, keys: list[str]) -> dict[str, Any]:
    """{key: value} of the `keys` present: L1 first, then the rest from L2 in one round trip."""
    out: dict[str, Any] = {}
    pending: list[tuple[str, str]] = []
    for key in keys:
        item = tiers.find(key)
        if item is not None:
            out[key] = item.value
        else:
            pending.append((key, tiers.key(key)))
    if pending and tiers.l2 is not None:
        coherence = tiers.coherence
        token = 0
        if coherence is not None:  # as `read`: L2 hits are copied into L1 unless an invalidation raced
            coherence.start()
            token = coherence.token()
        nothing: list[Any] = [None] * len(pending)
        raws = await tiers.call("get", lambda b: b.get_many([k for _, k in pending]), nothing)
        now = time.time()
        for (key, k), raw in zip(pending, raws, strict=True):
            if raw is None:
                continue
            try:
                value, expires_at, _ = tiers.codec.decode(k, raw)
            except SerializationError as exc:
                log.warning("cache %r: ignoring unreadable value: %s", tiers.namespace, exc)
                continue
            out[key] = value
            if coherence is not None and coherence.may_fill(k, token):
                tiers.fill(k, value, expires_at - now if expires_at is not None else None)
    return out


async def write_many(
    tiers: Tiers, mapping: Mapping[str, Any], ttl: float | None, tags: tuple[str, ...], sensitive: bool
) -> None:
    """Store every item of `mapping` (keys as the caller wrote them) with one ttl and tag set."""
    items = [(tiers.key(key), value) for key, value in mapping.items()]
    if tags and items:
        tiers.dependencies.check(tags, next(iter(mapping)))
    if tiers.l2 is not None:
        expires_at = time.time() + ttl if ttl else None
        blobs = [
            (k, tiers.codec.encode(k, v, expires_at=expires_at, sensitive=sensitive, name=key))
            for (k, v), key in zip(items, mapping, strict=True)
        ]
        await tiers.call("set", lambda b: b.set_many(blobs, ttl, tags), None)
    elif tiers.check_values:
        for (k, v), key in zip(items, mapping, strict=True):
            tiers.codec.check(k, v, key)
    for k, v in items:
        tiers.fill(k, v, ttl, tags)


async def invalidate(tiers: Tiers, tags: tuple[str, ...]) -> int:
    """Remove every key carrying any of the (namespaced) `tags`; how many were removed."""
    l1 = tiers.l1
    # chunked: a tag on 100k keys must not hold the event loop for the whole removal
    removed = await l1.remove_tags_async(tags) if l1 is not None else 0
    t0 = time.perf_counter()
    gone: list[str] = []
    removed2 = await tiers.call("invalidate", lambda b: b.invalidate_tags(tags, gone), 0, always=True)
    if l1 is not None and tiers.l2 is not None:
        # L1 copies filled from L2 reads carry no tags: evict the removed keys by name, now,
        # rather than when the coherence channel reports them (read-your-invalidation)
        await l1.remove_async(gone)
        coherence = tiers.coherence
        if coherence is not None:
            for key in gone:
                coherence.invalidated(key)
            coherence.poll(force=True)  # SQLite: apply the change log rows just written
    tiers.observe(tiers.namespace, "all", "invalidate", OK, time.perf_counter() - t0)
    return max(removed, removed2)
