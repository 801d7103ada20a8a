"""From a CACHES entry to perfkit's `Cache`: OPTIONS checked and mapped, one `Cache` per process.

Django makes a backend object per alias per thread (and again after `override_settings`); perfkit's
`Cache` owns an L1, connection pools and a sync facade thread, which must be shared, not multiplied.
So the `Cache` is kept per process and configuration (LOCATION + OPTIONS): every thread's backend
object for an alias uses the same one, and a forked worker makes its own.

OPTIONS (lower case: perfkit's `Cache` keywords; upper case: Django's own):
    l1                 an in-process tier in front of the shared one ("memory://?max_size=10000")
    namespace          perfkit's namespace: what clear(), tags and patterns are scoped to ("django")
    serializer         "django" (default: msgpack scalars, signed pickle for the rest), "pickle",
                       "msgpack" or "json" (no pickle at all: objects are refused)
    pickle_key         the HMAC key of pickled values (default: derived from SECRET_KEY)
    compression, compress_threshold, encryption_keys, encrypt_all, max_value_size, max_key_length,
    timeout, on_error, lock_timeout, l1_ttl, coherence_interval, check_values: as in `perfkit.Cache`
    MAX_ENTRIES        memory:// only: the tier's max_size (LRU), unless the URL sets one
    CULL_FREQUENCY     accepted for portability and ignored (perfkit evicts LRU, Redis by its policy)
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import weakref
from collections.abc import Mapping
from typing import Any, Final

from perfkit.backends import parse_url
from perfkit.cache import Cache
from perfkit.django import otel
from perfkit.django.cache_values import DjangoSerializer, derive_pickle_key
from perfkit.errors import ConfigurationError
from perfkit.metrics import cache_observer, default_collector

__all__ = [
    "OPTION_KEYS", "aclose_loop", "cache_for", "cache_for_loop", "cache_options", "close_all", "made",
]  # fmt: skip

_PASSED: Final = (
    "l1",
    "namespace",
    "compression",
    "compress_threshold",
    "encryption_keys",
    "encrypt_all",
    "max_value_size",
    "max_key_length",
    "timeout",
    "on_error",
    "lock_timeout",
    "l1_ttl",
    "coherence_interval",
    "check_values",
)
_DJANGO: Final = ("MAX_ENTRIES", "CULL_FREQUENCY")
OPTION_KEYS: Final = (*_PASSED, "serializer", "pickle_key", *_DJANGO)
DEFAULT_NAMESPACE: Final = "django"
_SERIALIZERS: Final = ("django", "pickle", "msgpack", "json")

_lock = threading.Lock()
_caches: dict[tuple[int, str], Cache] = {}  # (pid, configuration): a forked child makes its own


def _secret() -> str | bytes:
    from django.conf import settings

    secret: str | bytes = getattr(settings, "SECRET_KEY", "") or ""
    if not secret:
        raise ConfigurationError(
            "CACHES OPTIONS['pickle_key']", "is needed when settings.SECRET_KEY is empty"
        )
    return secret


def _as_bytes(secret: str | bytes) -> bytes:
    return secret.encode() if isinstance(secret, str) else secret


def _with_max_size(url: str, entries: Any) -> str:
    if isinstance(entries, bool) or not isinstance(entries, int) or entries < 1:
        raise ConfigurationError("CACHES OPTIONS['MAX_ENTRIES']", f"must be a positive int, not {entries!r}")
    if "max_size=" in url:
        return url
    return f"{url}{'&' if '?' in url else '?'}max_size={entries}"


def cache_options(location: str, options: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """(url, keywords for `perfkit.Cache`) for a CACHES entry; an unknown OPTIONS key is refused by name."""
    if not isinstance(location, str) or not location:
        raise ConfigurationError("CACHES LOCATION", "must be a perfkit cache URL such as redis://host:6379/0")
    unknown = sorted(str(k) for k in options if k not in OPTION_KEYS)
    if unknown:
        raise ConfigurationError(
            f"CACHES OPTIONS[{unknown[0]!r}]", f"is not a PerfkitCache option; known: {sorted(OPTION_KEYS)}"
        )
    url = location
    kwargs: dict[str, Any] = {k: options[k] for k in _PASSED if k in options}
    kwargs.setdefault("namespace", DEFAULT_NAMESPACE)
    if "MAX_ENTRIES" in options and parse_url(location, "CACHES LOCATION").scheme == "memory":
        url = _with_max_size(location, options["MAX_ENTRIES"])
    name = options.get("serializer", "django")
    if name not in _SERIALIZERS:
        raise ConfigurationError(
            "CACHES OPTIONS['serializer']", f"{name!r} is not one of {list(_SERIALIZERS)}"
        )
    pickle_key = options.get("pickle_key")
    if name == "django":
        kwargs["serializer"] = DjangoSerializer(pickle_key or derive_pickle_key(_secret()))
    elif name == "pickle":
        kwargs["serializer"] = "pickle"
        kwargs["pickle_key"] = pickle_key or derive_pickle_key(_secret())
    else:
        kwargs["serializer"] = name
    return url, kwargs


def cache_for(location: str, options: Mapping[str, Any]) -> Cache:
    """This process's `Cache` for a LOCATION and OPTIONS: made on first use, then shared."""
    url, kwargs = cache_options(location, options)
    own_key = "pickle_key" in options or options.get("serializer", "django") not in ("django", "pickle")
    secret = b"" if own_key else hashlib.sha256(_as_bytes(_secret())).digest()  # SECRET_KEY changed: anew
    ident = (os.getpid(), repr((url, sorted((k, repr(v)) for k, v in options.items()), secret)))
    cache = _caches.get(ident)
    if cache is None:
        with _lock:
            cache = _caches.get(ident)
            if cache is None:
                try:
                    cache = Cache(url, **kwargs)
                except TypeError as exc:  # a keyword of the wrong type: name the setting
                    raise ConfigurationError("CACHES OPTIONS", str(exc)) from None
                # counted in the process's metrics and the request's Server-Timing `cache`, as
                # `perfkit.instrument(cache=...)` does for an ASGI app (siblings share the observers)
                cache.add_observer(cache_observer(default_collector()))
                _caches[ident] = cache
            otel.watch_cache(cache)  # spans per tier operation, when PERFKIT['otel'] is on
    return cache


def made() -> list[Cache]:
    """The caches this process made so far."""
    with _lock:
        return list(_caches.values())


_loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, Cache]] = weakref.WeakKeyDictionary()


def cache_for_loop(cache: Cache) -> Cache:
    """`cache`'s sibling for the running event loop (connections belong to the loop that opened them):
    made on the loop's first call, sharing the L1 and the statistics, dropped with the loop."""
    loop = asyncio.get_running_loop()
    per_loop = _loops.get(loop)
    sibling = per_loop.get(id(cache)) if per_loop is not None else None
    if sibling is None:
        with _lock:
            per_loop = _loops.setdefault(loop, {})
            sibling = per_loop.get(id(cache))
            if sibling is None:
                sibling = per_loop[id(cache)] = cache.sibling()
    return sibling


async def aclose_loop() -> None:
    """Close the running loop's siblings of every cache (before the loop ends: a test, a worker's loop)."""
    per_loop = _loops.pop(asyncio.get_running_loop(), {})
    for sibling in per_loop.values():
        await sibling.close()


def close_all() -> None:
    """Close and forget this process's caches (tests, shutdown); the next use makes them again. Call it
    where no event loop runs (it runs each cache's async close on a loop of its own)."""
    with _lock:
        made = list(_caches.values())
        _caches.clear()
    for cache in made:
        asyncio.run(cache.close())
