"""Key rules: validation, namespacing, hashing of over-long keys, TTL and tag checks.

Keys are validated at the front door so that a bad key fails the same way on every backend and never
reaches storage. Over-long keys are not refused: they keep a readable head and a BLAKE2 digest of the
whole, so the same long key always maps to the same stored key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import timedelta
from typing import Final

from perfkit.config import parse_duration
from perfkit.errors import InvalidArgumentError, InvalidKeyError


class Unset:
    """Sentinel type for "argument not given" where None already means something (ttl=None: no expiry)."""

    _instance: Unset | None = None

    def __new__(cls) -> Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET: Final = Unset()
_Unset = Unset  # the former name, still imported by perfkit.web
TTL = float | int | timedelta | None

DEFAULT_MAX_KEY_LENGTH: Final = 250
DEPENDENCY_TAG_PREFIX: Final = "dep:"  # tags of values that depend on database rows (`perfkit.cache.orm`)
_HEAD: Final = 180


def make_key(prefix: str, key: object, max_length: int) -> str:
    """The stored key for a user key: `prefix + key`, hashed past `max_length` characters."""
    if not isinstance(key, str):
        raise InvalidKeyError(f"cache key must be a str, not {type(key).__name__}: {key!r:.80}")
    if not key:
        raise InvalidKeyError("cache key must not be empty")
    full = prefix + key
    if len(full) <= max_length:
        return full
    digest = hashlib.blake2b(full.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
    return f"{full[:_HEAD]}#{digest}"


MAX_TTL: Final = 10 * 365 * 86400.0  # ten years: the longest TTL every backend (Redis included) stores


def ttl_seconds(ttl: object, key: str, name: str = "ttl") -> float | None:
    """Seconds for a ttl argument (number or timedelta; None = no expiry); refuses <= 0 and > MAX_TTL.

    The same check on every backend: the number goes through `parse_duration`, so NaN, infinity and
    values over ten years raise `InvalidDurationError` (an `InvalidArgumentError`) naming the key.
    """
    if ttl is None:
        return None
    if isinstance(ttl, timedelta):
        value: float | int = ttl.total_seconds()
    elif isinstance(ttl, int | float) and not isinstance(ttl, bool):
        value = ttl
    else:
        raise InvalidArgumentError(f"{name} for key {key!r} must be seconds or a timedelta, not {ttl!r}")
    if value <= 0:  # NaN and infinity are refused by parse_duration, with their own message
        raise InvalidArgumentError(f"{name} for key {key!r} must be > 0 seconds or None (got {ttl!r})")
    return parse_duration(f"{name} for key {key!r}", value, maximum=MAX_TTL)


def check_tags(tags: Iterable[str] | None, key: str = "") -> tuple[str, ...]:
    """Tags as a tuple; a bare string is refused (it would otherwise be read as one tag per letter)."""
    if not tags:
        return ()
    if isinstance(tags, str | bytes):
        raise InvalidArgumentError(
            f"tags for key {key!r} must be a list of strings, not one string: {tags!r}"
        )
    out = tuple(tags)
    for tag in out:
        if not isinstance(tag, str) or not tag:
            raise InvalidArgumentError(f"tags for key {key!r} must be non-empty strings, got {tag!r}")
    return out
