"""Redis job hashes and claim replies as `JobRecord`s; one that cannot be read comes back corrupt.

A job hash holds the mutable fields as text and the immutable part of the job in one msgpack blob,
`spec`: (task, payload, max_attempts, timeout, queued_at). Each record is read on its own (see
`perfkit.jobs.records`), so garbage in one hash never fails the list or the claim batch it is in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import msgspec

from perfkit.errors import ConfigurationError
from perfkit.jobs.models import JobRecord, Priority, Status, queue_of
from perfkit.jobs.records import record_from_fields

_FLOATS = ("run_at", "started_at", "completed_at", "progress")  # a lease expiry lives in `active`
_INTS = ("priority", "attempts", "token", "stalls")
_TEXTS = ("id", "status", "key", "progress_message", "error", "traceback")
encode_spec = msgspec.msgpack.Encoder().encode
_decode_spec = msgspec.msgpack.Decoder(tuple[str, bytes, int, float | None, float]).decode
_PRIORITIES = frozenset(p.value for p in Priority)


def record_from_hash(flat: Sequence[bytes], job_id: str | None = None) -> JobRecord:
    """A job hash (HGETALL's flat reply) as a record; fields that cannot be read mark it corrupt."""
    raw = {_key_text(flat[i]): flat[i + 1] for i in range(0, len(flat), 2)}
    fields: dict[str, Any] = {name: raw[name] for name in (*_TEXTS, *_FLOATS, *_INTS) if name in raw}
    fields["result"] = raw.get("result")
    fields["cancel_requested"] = raw.get("cancel_requested") == b"1"
    if job_id is not None:
        fields.setdefault("id", job_id)
    return _with_spec(fields, raw.get("spec"))


def _with_spec(fields: dict[str, Any], spec: Any) -> JobRecord:
    """`fields` plus what the `spec` blob holds (task, payload, max_attempts, timeout, queued_at)."""
    problems: list[str] = []
    try:
        job_id = _text_or_none(fields.get("id")) or ""
        fields["id"] = job_id
        fields["queue"] = queue_of(job_id)
    except (ConfigurationError, UnicodeDecodeError):
        problems.append(f"id is {fields.get('id')!r}")
        fields["queue"] = ""
    if not isinstance(spec, bytes):
        problems.append("spec is missing")
    else:
        try:
            task, payload, max_attempts, timeout, queued_at = _decode_spec(spec)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            problems.append(f"spec cannot be decoded ({exc})")
        else:
            fields.update(task=task, payload=payload, max_attempts=max_attempts, timeout=timeout)
            fields["queued_at"] = queued_at
    return record_from_fields(fields, problems)


def _key_text(value: bytes) -> str:
    return value.decode(errors="replace")


def _text_or_none(value: Any) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def unreadable_record(job_id: str, why: str) -> JobRecord:
    """The record shown for a job key perfkit cannot read at all (e.g. a key of the wrong type)."""
    try:
        queue = queue_of(job_id)
    except ConfigurationError:
        queue = ""
    return JobRecord(id=job_id, queue=queue, task="", payload=b"", corrupt=why)


def claimed_record(queue: str, f: Sequence[Any], now: float, lease: float) -> JobRecord:
    """A claimed job from CLAIM's reply: id, spec, priority, attempts, key, run_at.

    Each record is read on its own: one that cannot be read comes back marked corrupt (the worker
    dead-letters it alone), never failing the batch it was claimed with.
    """
    attempts = int(f[3])  # computed by the script, always a number
    try:  # the common case, a sound record: read directly
        task, payload, max_attempts, timeout, queued_at = _decode_spec(f[1])
        priority, run_at = int(f[2]), float(f[5])
        if priority in _PRIORITIES and math.isfinite(run_at):
            return JobRecord(
                id=f[0].decode(), queue=queue, task=task, payload=payload, priority=priority,
                status=Status.RUNNING, attempts=attempts, max_attempts=max_attempts, timeout=timeout,
                key=None if f[4] is None else f[4].decode(), run_at=run_at, queued_at=queued_at,
                started_at=now, token=attempts, lease_until=now + lease,
            )  # fmt: skip
    except (TypeError, ValueError, UnicodeDecodeError, msgspec.DecodeError, msgspec.ValidationError):
        pass
    fields: dict[str, Any] = {
        "id": f[0], "priority": f[2], "status": Status.RUNNING.value, "attempts": attempts, "key": f[4],
        "run_at": f[5], "started_at": now, "token": attempts, "lease_until": now + lease,
    }  # fmt: skip
    record = _with_spec(fields, f[1])
    record.queue = queue
    return record
