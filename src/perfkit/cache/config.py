"""Settings of a `Cache`, resolved once: explicit arguments, else `PERFKIT_CACHE_*`, else the defaults.

`CacheConfig.resolve(...)` takes what `Cache(...)` was given and returns the settings every part of the
cache reads (the tiers, the codec, the loader). The result is frozen, so a sibling cache for another
event loop (`Cache.sibling`) reuses it as is instead of parsing the environment again.

Unlike `WebConfig`/`DbConfig` (whose fields are resolved in place by `__post_init__`), the arguments and
the resolved values have different types here (`compression=UNSET`, a serializer name, a duration
string), so resolution is a constructor that returns exact types rather than a dataclass that changes
the type of its own fields.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from perfkit.backends import BackendURL, parse_url
from perfkit.cache.keys import DEFAULT_MAX_KEY_LENGTH, TTL, UNSET, Unset, ttl_seconds
from perfkit.config import parse_choice, parse_duration, parse_size, parse_str, setting
from perfkit.errors import ConfigurationError
from perfkit.serialization import Serializer, get_serializer


@dataclass(frozen=True)
class CacheConfig:
    url: str  # PERFKIT_CACHE_URL, default memory://
    backend: BackendURL  # `url` parsed
    l1: BackendURL | None  # the in-process tier in front of a shared one
    namespace: str  # PERFKIT_CACHE_NAMESPACE, default "default"
    default_ttl: float | None  # PERFKIT_CACHE_DEFAULT_TTL, default 300 s
    serializer: Serializer  # PERFKIT_CACHE_SERIALIZER, default msgpack
    compression: str | None  # PERFKIT_CACHE_COMPRESSION, default zstd; None: off
    compress_threshold: int
    encryption_keys: Sequence[str | bytes] | None
    encrypt_all: bool
    max_value_size: int  # PERFKIT_CACHE_MAX_VALUE_SIZE, default 16 MiB
    max_key_length: int
    timeout: float  # PERFKIT_CACHE_TIMEOUT, default 0.5 s: per L2 operation
    on_error: str  # PERFKIT_CACHE_ON_ERROR: "degrade" (default) or "raise"
    lock_timeout: float
    l1_ttl: float | None  # caps how long an L1 copy lives
    coherence_interval: float  # SQLite L2: how often an L1 reads the change log
    check_values: bool  # memory:// only: serialize-check values as an L2 would

    @classmethod
    def resolve(
        cls,
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
        check_values: bool = True,
    ) -> CacheConfig:
        """The settings for `Cache(...)` given these arguments (see `Cache` for what each one means)."""
        url = setting("cache_url", url, "memory://", parse_str)
        namespace = setting("cache_namespace", namespace, "default", parse_str)
        if not namespace or not isinstance(namespace, str):
            raise ConfigurationError("namespace", "must be a non-empty string")
        env_ttl = setting("cache_default_ttl", None, 300.0, parse_duration)
        ttl = ttl_seconds(env_ttl if isinstance(default_ttl, Unset) else default_ttl, "*", "default_ttl")
        errors = parse_choice(
            "on_error", setting("cache_on_error", on_error, "degrade", parse_str), ("degrade", "raise")
        )
        timeout_s = (
            parse_duration("timeout", timeout)
            if timeout is not None
            else setting("cache_timeout", None, 0.5, parse_duration)
        )
        l1_ttl_s = ttl_seconds(l1_ttl, "*", "l1_ttl")
        backend = parse_url(url, "url")
        if not isinstance(check_values, bool):
            raise ConfigurationError("check_values", f"must be True or False, not {check_values!r}")
        if not check_values and backend.scheme != "memory":
            raise ConfigurationError(
                "check_values", "False applies to a memory:// cache only: an L2 always serializes values"
            )
        l1_url: BackendURL | None = None
        if l1 is not None:
            if backend.scheme == "memory":
                raise ConfigurationError(
                    "l1", "an in-process cache needs no l1; give l1= only with a shared L2"
                )
            l1_url = parse_url(l1, "l1")
            if l1_url.scheme != "memory":
                raise ConfigurationError("l1", f"{l1!r}: the L1 tier must be a memory:// URL")
        chosen = setting("cache_compression", None, "zstd", parse_str)
        if not isinstance(compression, Unset):
            chosen = compression  # type: ignore[assignment]  # None (off) is a valid choice here
        return cls(
            url=url,
            backend=backend,
            l1=l1_url,
            namespace=namespace,
            default_ttl=ttl,
            serializer=get_serializer(
                serializer
                if serializer is not None
                else setting("cache_serializer", None, "msgpack", parse_str),
                pickle_key=pickle_key,
            ),
            compression=None if chosen in (None, "none") else chosen,
            compress_threshold=parse_size(
                "compress_threshold", compress_threshold if compress_threshold is not None else 1024
            ),
            encryption_keys=encryption_keys,
            encrypt_all=encrypt_all,
            max_value_size=parse_size("max_value_size", max_value_size)
            if max_value_size is not None
            else setting("cache_max_value_size", None, 16 * 1024 * 1024, parse_size),
            max_key_length=max_key_length,
            timeout=timeout_s,
            on_error=errors,
            lock_timeout=lock_timeout,
            l1_ttl=l1_ttl_s,
            coherence_interval=coherence_interval,
            check_values=check_values,
        )
