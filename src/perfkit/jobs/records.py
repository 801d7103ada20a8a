"""Reading stored job records field by field, so one corrupt record never breaks anything else.

A stored record can hold what perfkit never writes: a text `run_at` in SQLite (its columns take any
type), an unknown status, a priority out of range, a NaN time in PostgreSQL, garbage in a Redis hash.
Each field is converted on its own; one that cannot be read keeps its default and is named in the
record's `corrupt`, so the job is shown as `corrupt` and a worker dead-letters it alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from perfkit.jobs.models import JobRecord, Priority, Status


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, str):
        return value
    raise TypeError(type(value).__name__)


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str | bytes):
        raise TypeError(type(value).__name__)
    number = float(value)
    if not math.isfinite(number):
        raise ValueError("not finite")
    return number


def _integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str | bytes):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise TypeError(type(value).__name__)
    return int(value)


def _blob(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    raise TypeError(type(value).__name__)


def _flag(value: Any) -> bool:
    if isinstance(value, bytes | str):
        return _text(value) not in ("", "0", "false")
    if isinstance(value, bool | int):
        return bool(value)
    raise TypeError(type(value).__name__)


def _optional(convert: Any) -> Any:
    return lambda value: None if value is None else convert(value)


_FIELDS: dict[str, Any] = {
    "id": _text, "queue": _text, "task": _text, "payload": _blob, "priority": _integer, "status": _text,
    "attempts": _integer, "max_attempts": _integer, "timeout": _optional(_number), "key": _optional(_text),
    "run_at": _number, "queued_at": _number, "started_at": _optional(_number),
    "completed_at": _optional(_number), "progress": _number, "progress_message": _optional(_text),
    "result": _optional(_blob), "error": _optional(_text), "traceback": _optional(_text),
    "token": _integer, "lease_until": _optional(_number), "cancel_requested": _flag, "stalls": _integer,
}  # fmt: skip
_STATUSES = frozenset(s.value for s in Status) - {Status.CORRUPT.value}
_PRIORITIES = frozenset(p.value for p in Priority)


_NONE = type(None)
_SOUND: dict[str, tuple[type, ...]] = {
    "id": (str,), "queue": (str,), "task": (str,), "payload": (bytes,), "priority": (int,), "status": (str,),
    "attempts": (int,), "max_attempts": (int,), "timeout": (float, _NONE), "key": (str, _NONE),
    "run_at": (float,), "queued_at": (float,), "started_at": (float, _NONE), "completed_at": (float, _NONE),
    "progress": (float,), "progress_message": (str, _NONE), "result": (bytes, _NONE), "error": (str, _NONE),
    "traceback": (str, _NONE), "token": (int,), "lease_until": (float, _NONE), "cancel_requested": (int,),
    "stalls": (int,),
}  # fmt: skip


def record_from_values(values: dict[str, Any]) -> JobRecord:
    """`record_from_fields` for values of their natural types (SQL rows): a sound row takes a fast path."""
    for name, value in values.items():
        if type(value) not in _SOUND[name] and not isinstance(value, bool):
            return record_from_fields(values)
    if (
        values["status"] not in _STATUSES
        or values["priority"] not in _PRIORITIES
        or not -math.inf < values["run_at"] < math.inf
        or not -math.inf < values["queued_at"] < math.inf
    ):
        return record_from_fields(values)
    values["cancel_requested"] = bool(values["cancel_requested"])
    return JobRecord(**values)


def record_from_fields(fields: Mapping[str, Any], problems: Sequence[str] = ()) -> JobRecord:
    """A `JobRecord` from stored fields (a SQL row's values or a Redis hash's bytes), each read on its own.

    A field that cannot be read (a text `run_at`, an unknown status, a priority out of range, a blob
    that is not bytes) keeps its default and is named in `corrupt`, with `problems` the caller found
    (an undecodable Redis `spec`): one bad record is shown as corrupt, and dead-lettered alone when a
    worker claims it, instead of breaking a list, a health check or the claim batch it came in.
    """
    values: dict[str, Any] = {}
    found = list(problems)
    for name, raw in fields.items():
        convert = _FIELDS.get(name)
        if convert is None:
            continue
        try:
            values[name] = convert(raw)
        except (TypeError, ValueError, OverflowError, UnicodeDecodeError):
            found.append(f"{name} is {_shown(raw)}")
    if "status" in values and values["status"] not in _STATUSES:
        found.append(f"status is {_shown(values.pop('status'))}")
    if "priority" in values and values["priority"] not in _PRIORITIES:
        found.append(f"priority is {_shown(values.pop('priority'))}")
    for name in ("id", "queue", "task"):
        values.setdefault(name, "")
    values.setdefault("payload", b"")
    return JobRecord(**values, corrupt="; ".join(found) if found else None)


def _shown(raw: Any) -> str:
    text = repr(raw)
    return text if len(text) <= 60 else text[:57] + "..."
