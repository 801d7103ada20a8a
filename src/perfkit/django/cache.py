"""`PerfkitCache`: Django's cache framework over perfkit's `Cache` (memory, SQLite, Redis, tiered).

    CACHES = {"default": {
        "BACKEND": "perfkit.django.cache.PerfkitCache",
        "LOCATION": "redis://127.0.0.1:6379/0",            # any perfkit cache URL
        "OPTIONS": {"l1": "memory://?max_size=10000"},     # see perfkit.django.cache_setup
    }}

Django's API and semantics (TIMEOUT, KEY_PREFIX, VERSION, KEY_FUNCTION, the key warnings, the `a*`
methods, natively async in `cache_async`), plus perfkit's:

- `get_or_set` / `add` are single flight: concurrent misses of one key run the default once per process,
  and once across processes with a shared tier (perfkit's loader and its Redis/SQLite lock);
- `set(..., tags=[...])` (also `add`, `set_many`, `get_or_set`) and `invalidate_tags([...])`;
- `delete_pattern("ticket:*")` over this alias's KEY_PREFIX and VERSION;
- `queryset(qs, ttl=...)`, the cached queryset of `perfkit.django.querysets`;
- `perfkit_cache`: the underlying `perfkit.Cache` (for code written against perfkit's own API).

Values: plain scalars as msgpack, everything else as pickle signed with an HMAC bound to the namespace
and the key (`cache_values`): bytes nobody signed are never unpickled. A failing shared tier degrades:
reads miss, `set` returns False (and `set_many` the keys), perfkit logs the outage once; nothing raises
into the view except `incr`/`decr`, which have no answer to give.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT

from perfkit.cache.keys import MAX_TTL
from perfkit.django.cache_async import AsyncPerfkitCache
from perfkit.django.cache_base import MISSING, Expired, not_an_int, sync_conversion_lock
from perfkit.django.cache_flight import get_or_set_here
from perfkit.django.cache_values import prepare, unwrap
from perfkit.errors import SerializationError

__all__ = ["PerfkitCache"]


class PerfkitCache(AsyncPerfkitCache):
    """A Django cache backend over `perfkit.Cache`; blocking calls go through its sync facade."""

    def get(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        return unwrap(self.sync.get(self.key(key, version), default))

    def set(
        self,
        key: Any,
        value: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        *,
        tags: Iterable[str] | None = None,
    ) -> bool:
        """Store `value`; False when the shared tier is down (the value then lives in L1 only, if any)."""
        k, ttl = self.key(key, version), self.seconds(timeout)
        if isinstance(ttl, Expired):
            self.sync.delete(k)
            return True
        failed = self.l2_failures()
        self.sync.set(k, prepare(value), ttl, tags=tags)
        return self.l2_failures() == failed

    def add(
        self,
        key: Any,
        value: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        *,
        tags: Iterable[str] | None = None,
    ) -> bool:
        """Store `value` unless `key` is present; True when this call stored it. Atomic among add() and
        get_or_set() callers (single flight, and the cross-process lock of a shared tier)."""
        k, ttl = self.key(key, version), self.seconds(timeout)
        if isinstance(ttl, Expired):
            return not self.sync.exists(k)
        added, prepared, failures = False, prepare(value), self.l2_failures()

        def load() -> Any:
            nonlocal added
            added = True
            return prepared

        self.sync.get_or_set(k, load, ttl, tags=tags)
        return added and self.l2_failures() == failures

    def get_or_set(
        self,
        key: Any,
        default: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        *,
        tags: Iterable[str] | None = None,
    ) -> Any:
        """The cached value, else `default` (or `default()`, run once however many callers miss), stored."""
        k, ttl = self.key(key, version), self.seconds(timeout)
        if isinstance(ttl, Expired):
            return default() if callable(default) else default
        if not callable(default):
            prepared = prepare(default)
            return unwrap(self.sync.get_or_set(k, lambda: prepared, ttl, tags=tags))
        found = self.sync.get(k, MISSING)  # the hit path stays one call
        if found is not MISSING:
            return unwrap(found)
        return unwrap(get_or_set_here(self.sync, k, lambda: prepare(default()), ttl, tags))

    def touch(self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        """Give `key` a new timeout (the value is written again, without its tags); False if absent."""
        k, ttl = self.key(key, version), self.seconds(timeout)
        value = self.sync.get(k, MISSING)
        if value is MISSING:
            return False
        if isinstance(ttl, Expired):
            self.sync.delete(k)
        else:
            self.sync.set(k, prepare(value), ttl)
        return True

    def delete(self, key: Any, version: int | None = None) -> bool:
        return self.sync.delete(self.key(key, version))

    def has_key(self, key: Any, version: int | None = None) -> bool:
        return self.sync.exists(self.key(key, version))

    def get_many(self, keys: Iterable[Any], version: int | None = None) -> dict[Any, Any]:
        made = {self.key(key, version): key for key in keys}
        found = self.sync.get_many(list(made))
        return {made[k]: unwrap(value) for k, value in found.items()}

    def set_many(
        self,
        data: Mapping[Any, Any],
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        *,
        tags: Iterable[str] | None = None,
    ) -> list[Any]:
        """Store every item in one round trip; returns the keys not stored (all of them while the shared
        tier is down, as Django's memcached backend reports failures)."""
        ttl = self.seconds(timeout)
        if isinstance(ttl, Expired):
            self.delete_many(list(data), version)
            return []
        failed = self.l2_failures()
        self.sync.set_many({self.key(k, version): prepare(v) for k, v in data.items()}, ttl, tags=tags)
        return list(data) if self.l2_failures() != failed else []

    def delete_many(self, keys: Iterable[Any], version: int | None = None) -> None:
        for k in [self.key(key, version) for key in keys]:
            self.sync.delete(k)

    def incr(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        """Add `delta` atomically (Redis INCRBY, a SQLite transaction, the memory tier's lock); ValueError
        when `key` is absent, TypeError when it is not an int. An int stored by set() or add() becomes a
        counter on its first incr: read, then rewritten with the alias's TIMEOUT (as Django's
        BaseCache.incr), one conversion at a time in this process."""
        k, failures = self.key(key, version), self.l2_failures("exists")
        if not self.sync.exists(k):
            raise self.absent(key, failures)
        try:
            return self.sync.incr(k, delta, self.counter_ttl())
        except SerializationError:
            with sync_conversion_lock(k):
                return self._convert(key, k, delta)

    def _convert(self, key: Any, k: str, delta: int) -> int:
        try:  # another thread may have converted it while this one waited for the lock
            return self.sync.incr(k, delta, self.counter_ttl())
        except SerializationError:
            value = self.sync.get(k, MISSING)
            if value is MISSING:
                raise ValueError(f"Key '{key}' not found") from None
            if type(value) is not int:
                raise not_an_int(key, value) from None
            self.sync.delete(k)
            return self.sync.incr(k, value + delta, self.counter_ttl())

    def clear(self) -> None:
        """Remove every key of this cache's namespace (OPTIONS `namespace`), and nothing outside it."""
        self.sync.clear()

    def close(self, **kwargs: Any) -> None:
        """Nothing to do: connections are pooled per process, not per request (Django calls this after
        every request)."""

    # -- perfkit's extensions -------------------------------------------------------------------------

    def invalidate_tags(self, tags: Iterable[str]) -> int:
        """Remove every key stored with any of `tags` (in this namespace); returns how many."""
        return self.sync.invalidate_tags(list(tags))

    def delete_pattern(self, pattern: str, version: int | None = None) -> int:
        """Remove the keys matching `pattern` (`*`, `?`, `[...]`; `\\` quotes) under this alias's
        KEY_PREFIX and VERSION; returns how many. Keys longer than `max_key_length` are stored hashed
        and only match a pattern that matches their first 180 characters followed by `*`."""
        return self.sync.delete_match(self.pattern(pattern, version))

    def queryset(self, qs: Any, ttl: Any = DEFAULT_TIMEOUT, *, tags: Iterable[str] | None = None) -> Any:
        """`qs`'s rows, cached and invalidated when the rows change (`perfkit.django.querysets`). `ttl` is
        a Django timeout: the alias's TIMEOUT by default, None for as long as perfkit keeps anything (ten
        years: `cache_queryset` reads None as "the cache's default"), 0 for no caching at all."""
        import importlib

        seconds = self.seconds(ttl)
        if isinstance(seconds, Expired):  # a timeout of 0: nothing is cached
            return list(qs)
        querysets = importlib.import_module("perfkit.django.querysets")  # loaded lazily, as Django does
        return querysets.cache_queryset(
            self.perfkit_cache, qs, ttl=MAX_TTL if seconds is None else seconds, tags=tuple(tags or ())
        )
