"""What the SQL backends (SQLite, PostgreSQL) share: the column list and row <-> record mapping."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from perfkit.errors import ConfigurationError
from perfkit.jobs.models import JobRecord, Status
from perfkit.jobs.records import record_from_values

COLUMNS = (
    "id", "queue", "task", "payload", "priority", "status", "attempts", "max_attempts", "timeout", "key",
    "run_at", "queued_at", "started_at", "completed_at", "progress", "progress_message", "result", "error",
    "traceback", "token", "lease_until", "cancel_requested", "stalls",
)  # fmt: skip
SELECT_LIST = ", ".join(COLUMNS)
TERMINAL = tuple(s.value for s in Status if s.terminal)

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,40}$")


def table_name(options: Mapping[str, str], default: str = "perfkit_jobs") -> str:
    name = options.get("table", default)
    if not _NAME.match(name):
        raise ConfigurationError("table", f"{name!r} is not a plain SQL identifier (letters, digits, _)")
    return name


def record_from_row(row: Sequence[Any]) -> JobRecord:
    """The record of a row; a column that cannot be read marks it corrupt (see `record_from_fields`)."""
    return record_from_values(dict(zip(COLUMNS, row, strict=True)))


def row_from_record(rec: JobRecord) -> tuple[Any, ...]:
    return tuple(getattr(rec, c) for c in COLUMNS)


def status_filter(status: Status | None, now: float) -> tuple[str, list[Any]]:
    """A WHERE fragment for a status; SCHEDULED is a queued job whose time has not come."""
    if status is None:
        return "", []
    if status is Status.SCHEDULED:
        return "status = 'queued' AND run_at > ?", [now]
    if status is Status.QUEUED:
        return "status = 'queued' AND run_at <= ?", [now]
    return "status = ?", [status.value]
