"""Settings: explicit arguments win, else `PERFKIT_*` environment variables, else the default.

Every parser raises `ConfigurationError` naming the setting and the accepted values, so a typo in an
environment variable fails at start-up with a message that says what to write instead.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, cast

from perfkit.errors import ConfigurationError, InvalidDurationError

T = TypeVar("T")

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_SIZES = {"b": 1, "kb": 1000, "kib": 1024, "mb": 1000**2, "mib": 1024**2, "gb": 1000**3, "gib": 1024**3}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def setting(name: str, explicit: T | None, default: T, parse: Callable[[str, str], T]) -> T:
    """Resolve one setting: the explicit value, else `PERFKIT_<NAME>` parsed, else `default`.

    An explicit duration is checked too (NaN, infinity and negative values refused, naming `name`).
    """
    if explicit is not None:
        if parse is parse_duration:
            value: Any = explicit
            checked: Any = parse_duration(name, value)
            return cast(T, checked)  # T is float here: parse is parse_duration
        return explicit
    raw = os.environ.get(f"PERFKIT_{name.upper()}")
    if raw is None or raw == "":
        return default
    return parse(f"PERFKIT_{name.upper()}", raw)


def parse_str(name: str, raw: str) -> str:
    return raw


def parse_bool(name: str, raw: str) -> bool:
    low = raw.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ConfigurationError(name, f"{raw!r} is not a boolean; use one of {sorted(_TRUE | _FALSE)}")


def parse_duration(name: str, raw: str | float | int, *, maximum: float | None = None) -> float:
    """Seconds from `1.5`, `250ms`, `30s`, `5m`, `2h`, `7d`: the one duration parser of perfkit.

    Every delay, lease, retention, timeout and TTL goes through it. NaN, infinity, negative values
    and values over `maximum` raise `InvalidDurationError` (a `ConfigurationError` and an
    `InvalidArgumentError`, so a `ValueError`) naming the setting `name`.
    """
    if isinstance(raw, bool):
        raise InvalidDurationError(name, f"{raw!r} is not a duration; use e.g. 30, '250ms', '5m'")
    if isinstance(raw, int | float):
        try:
            value = float(raw)
        except OverflowError:  # an int too large for a float
            value = math.inf
    elif isinstance(raw, str):
        text = raw.strip().lower()
        for unit in sorted(_UNITS, key=len, reverse=True):
            if text.endswith(unit):
                number, factor = text[: -len(unit)], _UNITS[unit]
                break
        else:
            number, factor = text, 1.0
        try:
            value = float(number) * factor
        except ValueError:
            raise InvalidDurationError(
                name, f"{raw!r} is not a duration; use seconds or a unit from {list(_UNITS)}"
            ) from None
    else:
        raise InvalidDurationError(name, f"{raw!r} is not a duration; use e.g. 30, '250ms', '5m'")
    if not math.isfinite(value):
        raise InvalidDurationError(name, f"{raw!r} is not a finite number of seconds")
    if value < 0:
        raise InvalidDurationError(name, f"{raw!r} is negative; a duration must be >= 0")
    if maximum is not None and value > maximum:
        raise InvalidDurationError(name, f"{raw!r} is over the maximum of {maximum:,.0f} seconds")
    return value


def parse_size(name: str, raw: str | int) -> int:
    """Bytes from `1048576`, `512kB` (1000) or `512KiB` (1024), as size-limit counts them."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    else:
        text = str(raw).strip().lower().replace(" ", "")
        for unit in sorted(_SIZES, key=len, reverse=True):
            if text.endswith(unit):
                number, factor = text[: -len(unit)], _SIZES[unit]
                break
        else:
            number, factor = text, 1
        try:
            value = int(float(number) * factor)
        except ValueError:
            raise ConfigurationError(
                name, f"{raw!r} is not a size; use bytes or a unit from {list(_SIZES)}"
            ) from None
    if value < 0:
        raise ConfigurationError(name, f"{raw!r} is negative; a size must be >= 0")
    return value


def parse_int(name: str, raw: str | int, *, minimum: int = 0) -> int:
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise ConfigurationError(name, f"{raw!r} is not an integer") from None
    if value < minimum:
        raise ConfigurationError(name, f"{raw!r} is below the minimum of {minimum}")
    return value


def parse_choice(name: str, raw: str, choices: Iterable[str]) -> str:
    options = list(choices)
    if raw not in options:
        raise ConfigurationError(name, f"{raw!r} is not one of {options}")
    return raw
