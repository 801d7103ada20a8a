"""The front of the tier engine: what a cache does in the calling thread, without I/O.

`Front` is the base of `perfkit.cache.tiers.Tiers` (which adds the L2, the codec and health):

- `key(key)`, `ttl(ttl, key)`, `tags(tags, key)`: a key's stored name (namespaced, validated, hashed
  when too long), a ttl argument in seconds, tags checked and namespaced.
- `find(key, fresh=False)`: the counted L1 lookup, the hot path, with the one fresh-hit check.
- `peek(k)`: the L1 item of a stored name, fresh or stale, not counted (for the loader).
- `fill(k, value, ttl, tags, fresh_for)`: the one L1 write, with the one `l1_ttl` clamp.
- `add_observer(observer)` and `rewire()`: observation (`perfkit.cache.observers.Observers`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from perfkit.cache.backends.memory import Item, MemoryBackend
from perfkit.cache.coherence import Coherence
from perfkit.cache.config import CacheConfig
from perfkit.cache.keys import UNSET, check_tags, make_key, ttl_seconds
from perfkit.cache.observers import Observers
from perfkit.cache.stats import HIT, MISS, CacheObserver, StatsCounter

__all__ = ["Front"]

_monotonic = time.monotonic
_L1_HIT, _L1_MISS = ("l1", "get", HIT), ("l1", "get", MISS)


class Front:
    """Key names, the L1 (when there is one) and the observers of one cache.

    `coherence`: what keeps the L1 in step with a shared L2 (None without one of them); while it is not
    `ready`, the L1 answers nothing. `observers` may be shared with siblings (one per event loop).
    """

    def __init__(
        self,
        config: CacheConfig,
        prefix: str,
        l1: MemoryBackend | None,
        coherence: Coherence | None,
        observers: Observers,
    ) -> None:
        self.namespace = config.namespace
        self.default_ttl = config.default_ttl
        self.l1_ttl = config.l1_ttl
        self.prefix = prefix
        self.l1 = l1
        self.coherence = coherence
        self._max_key_length = config.max_key_length
        self._max_direct = config.max_key_length - len(prefix)
        self._poll = coherence.poll if coherence is not None and coherence.polls else None
        self.observers = observers
        self.stats: StatsCounter = observers.stats
        self.observe: CacheObserver = observers.observe
        self._counts: Any = observers.counts
        observers.join(self)

    # -- observation ----------------------------------------------------------------------------------

    def add_observer(self, observer: CacheObserver) -> None:
        """Also report every tier operation to `observer`, in this engine and those sharing its L1."""
        self.observers.add(observer)

    def rewire(self) -> None:
        """Re-read how to report (called by the observers when one is added)."""
        self.observe = self.observers.observe
        self._counts = self.observers.counts

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
