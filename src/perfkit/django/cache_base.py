"""What the sync and async halves of `PerfkitCache` share: Django's keys and timeouts in perfkit's terms.

Keys: Django's own `make_key` (KEY_PREFIX, VERSION, KEY_FUNCTION) and `validate_key` (the memcached
portability warnings), then perfkit namespaces the result (and hashes keys past `max_key_length`).
Timeouts: Django's DEFAULT_TIMEOUT means the alias's TIMEOUT, None means forever, 0 or less means
"expired at once" (`EXPIRED`: nothing is stored, an existing value is removed), and anything longer
than perfkit's longest TTL (ten years) is stored for that long.
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from typing import Any, Final

from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache

from perfkit.cache import Cache
from perfkit.cache.keys import MAX_TTL, UNSET, Unset
from perfkit.cache.stats import ERROR
from perfkit.cache.sync import SyncCache
from perfkit.django.cache_setup import cache_for, cache_for_loop
from perfkit.errors import BackendUnavailableError, SerializationError

__all__ = ["EXPIRED", "MISSING", "PerfkitCacheBase", "conversion_lock", "not_an_int", "sync_conversion_lock"]


class Expired:
    """The type of `EXPIRED`: a timeout of 0 or less."""

    def __repr__(self) -> str:
        return "EXPIRED"


EXPIRED: Final = Expired()
MISSING: Final[Any] = object()
_MEMCACHED_MAX: Final = 250  # Django's MEMCACHE_MAX_KEY_LENGTH: longer keys get a CacheKeyWarning
Seconds = float | None | Expired


def not_an_int(key: object, value: object) -> SerializationError:
    """What incr()/decr() raise for a value that is not an int (a TypeError, as Django's backends)."""
    return SerializationError(f"cannot incr key {key!r}: it holds a {type(value).__name__}, not an int")


# incr() of an int that set() stored makes it a counter (read, delete, INCRBY): one conversion of a key
# at a time in this process, so concurrent first increments are not lost (striped locks, by key hash)
_STRIPES: Final = 64
_thread_stripes: Final = [threading.Lock() for _ in range(_STRIPES)]
_loop_stripes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, list[asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)


def sync_conversion_lock(key: str) -> threading.Lock:
    """The lock under which sync code turns `key`'s stored int into a counter."""
    return _thread_stripes[hash(key) % _STRIPES]


def conversion_lock(key: str) -> asyncio.Lock:
    """The running loop's lock under which async code turns `key`'s stored int into a counter."""
    loop = asyncio.get_running_loop()
    stripes = _loop_stripes.get(loop)
    if stripes is None:
        stripes = _loop_stripes[loop] = [asyncio.Lock() for _ in range(_STRIPES)]
    return stripes[hash(key) % _STRIPES]


class PerfkitCacheBase(BaseCache):
    """The shared state of a `PerfkitCache`: `perfkit_cache` (the underlying `perfkit.Cache`, shared by
    every thread's backend object for this configuration) and the key and timeout conversions."""

    def __init__(self, location: str, params: dict[str, Any]) -> None:
        super().__init__(params)
        self._location, self._options = location, params.get("OPTIONS") or {}
        # Django's own validate_key (a subclass's may refuse more): its warnings can be predicted cheaply
        self._stock_validation = type(self).validate_key is BaseCache.validate_key
        self._attach()

    def _attach(self) -> None:
        self._pid = os.getpid()
        self.perfkit_cache: Cache = cache_for(self._location, self._options)
        self._facade = self.perfkit_cache.sync  # the blocking facade (an L1 hit stays in the caller's thread)
        self._bound: tuple[asyncio.AbstractEventLoop | None, Cache] = (None, self.perfkit_cache)

    @property
    def sync(self) -> SyncCache:
        """The blocking facade of `perfkit_cache`. In a forked child (a backend made before gunicorn
        forked its workers) the parent's facade thread does not exist: the child's own cache is used."""
        if self._pid != os.getpid():
            self._attach()
        return self._facade

    def key(self, key: Any, version: int | None = None) -> str:
        """The key perfkit stores: Django's `make_key`, after its portability warnings (`validate_key`,
        skipped for a key that cannot raise one: printable ASCII, no space, at most 250 characters)."""
        made: str = self.make_key(key, version=version)
        if (
            self._stock_validation
            and type(made) is str
            and len(made) <= _MEMCACHED_MAX
            and made.isascii()
            and made.isprintable()
            and " " not in made
        ):
            return made
        self.validate_key(made)
        return made

    def seconds(self, timeout: Any = DEFAULT_TIMEOUT) -> Seconds:
        """Django's timeout as perfkit's ttl: seconds, None (forever) or `EXPIRED`."""
        if timeout is DEFAULT_TIMEOUT:
            timeout = self.default_timeout
        if timeout is None:
            return None
        if timeout <= 0:
            return EXPIRED
        return min(float(timeout), MAX_TTL)

    def counter_ttl(self) -> float | Unset | None:
        """The ttl of a counter that incr() has to (re)create: the alias's TIMEOUT."""
        ttl = self.seconds()
        return UNSET if isinstance(ttl, Expired) else ttl

    def for_loop(self) -> Cache:
        """The perfkit cache for the running event loop (its own connections, the shared L1)."""
        loop = asyncio.get_running_loop()
        if self._pid != os.getpid():
            self._attach()
        bound = self._bound  # one tuple, replaced whole: a thread on another loop never sees half of it
        if bound[0] is loop:
            return bound[1]
        cache = cache_for_loop(self.perfkit_cache)
        self._bound = (loop, cache)
        return cache

    def pattern(self, pattern: str, version: int | None = None) -> str:
        """A delete_pattern() pattern as a pattern over stored keys: KEY_PREFIX and VERSION quoted."""
        from perfkit.cache.pattern import escape

        if not isinstance(pattern, str) or not pattern:
            raise TypeError("delete_pattern pattern must be a non-empty string")
        version = self.version if version is None else version
        made: str = self.key_func(pattern, escape(self.key_prefix), escape(str(version)))
        return made

    def l2_failures(self, op: str = "set") -> int:
        """How many `op`s on the shared tier failed so far (all threads and loops): a write that raises
        the count was not stored there (it went to L1 only, or nowhere)."""
        return self.perfkit_cache.tiers.stats.counts.get(("l2", op, ERROR), 0)

    def absent(self, key: Any, failures: int) -> Exception:
        """What incr() raises for a key exists() did not find: ValueError, or, when that exists() failed
        (`failures` is the count before it), `BackendUnavailableError`: there is no answer to give."""
        if self.l2_failures("exists") != failures:
            return BackendUnavailableError(f"cannot incr key {key!r}: the cache's shared tier is unavailable")
        return ValueError(f"Key '{key}' not found")
