"""The job record every backend stores, its status and priority, and what a worker reports back.

Times are UNIX seconds (floats) taken from the enqueuing or working process's clock, the same way on
every backend, so a record read from SQLite, PostgreSQL or Redis compares the same.
"""

from __future__ import annotations

import enum
import random
import time
from dataclasses import dataclass, field
from typing import Any

from perfkit.errors import ConfigurationError

_bits = random.getrandbits


class Priority(enum.IntEnum):
    """Strict priorities within a queue: a lower value always runs first, FIFO within one priority."""

    CRITICAL = 0
    HIGH = 1
    MEDIUM = 2
    LOW = 3

    @classmethod
    def parse(cls, value: Priority | str | int, setting: str = "priority") -> Priority:
        if isinstance(value, Priority):
            return value
        if isinstance(value, str) and value.upper() in cls.__members__:
            return cls[value.upper()]
        if isinstance(value, int) and not isinstance(value, bool) and value in {p.value for p in cls}:
            return cls(value)
        names = [p.name.lower() for p in cls]
        raise ConfigurationError(setting, f"{value!r} is not a priority; use one of {names}")


_PRIORITIES = {int(p): p for p in Priority}


def priority_of(value: int) -> Priority:
    """`Priority(value)` by a dict lookup, not the Enum call; a value that is no priority raises the same."""
    found = _PRIORITIES.get(value)
    return found if found is not None else Priority(value)


class Status(enum.StrEnum):
    """Where a job is in its life; the last four are terminal."""

    QUEUED = "queued"  # waiting for a worker
    SCHEDULED = "scheduled"  # waiting for its time (delay=, at=, or a retry's backoff)
    RUNNING = "running"  # leased by a worker
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # its last attempt raised or timed out; dead-lettered with error and traceback
    DEAD = "dead"  # it could not run at all (unknown task, unreadable payload) or kept losing its lease
    CANCELLED = "cancelled"
    CORRUPT = "corrupt"  # never stored: a record perfkit cannot read (see `JobRecord.corrupt`), never run

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL

    @classmethod
    def parse(cls, value: Status | str, setting: str = "status") -> Status:
        try:
            return cls(value)
        except ValueError:
            raise ConfigurationError(
                setting, f"{value!r} is not a status; use one of {[s.value for s in cls]}"
            ) from None


MAX_STALLS = 3  # a job that loses its lease this many times is dead: it probably takes its worker down

_TERMINAL = frozenset({Status.SUCCEEDED, Status.FAILED, Status.DEAD, Status.CANCELLED})


def pack_payload(args: list[Any], kwargs: dict[str, Any], headers: dict[str, str] | None) -> list[Any]:
    """What a job's payload serializes: `[args, kwargs]`, and its headers third when it has any."""
    return [args, kwargs] if not headers else [args, kwargs, headers]


def unpack_payload(data: Any) -> tuple[list[Any], dict[str, Any], dict[str, str] | None]:
    """`pack_payload` undone: (args, kwargs, headers or None); ValueError for anything else."""
    if not isinstance(data, list | tuple) or len(data) not in (2, 3):
        raise ValueError(
            f"a job payload is [args, kwargs] or [args, kwargs, headers], not {type(data).__name__}"
        )
    headers = data[2] if len(data) == 3 else None
    if headers is not None and not (
        isinstance(headers, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items())
    ):
        raise ValueError("a job payload's headers are a mapping of strings")
    return data[0], data[1], headers


def new_job_id(queue: str) -> str:
    """`<queue>:<time-ordered hex>`: the queue is part of the id so any backend finds a job in one step.

    The 40 random bits only keep ids made in the same microsecond apart (an id is no secret: reading a
    job takes a token), so they come from `random` (reseeded in a forked child), not a system call."""
    return f"{queue}:{time.time_ns() // 1000:014x}{_bits(40):010x}"


def queue_of(job_id: str) -> str:
    queue, sep, _ = job_id.rpartition(":")
    if not sep or not queue:
        raise ConfigurationError("job_id", f"{job_id!r} is not a perfkit job id ('<queue>:<hex>')")
    return queue


@dataclass(slots=True)
class JobRecord:
    """One job as stored: the payload and result are serialized bytes (msgpack by default)."""

    id: str
    queue: str
    task: str
    payload: bytes
    priority: int = Priority.MEDIUM
    status: str = Status.QUEUED
    attempts: int = 0
    max_attempts: int = 1
    timeout: float | None = None
    key: str | None = None
    run_at: float = 0.0
    queued_at: float = 0.0
    started_at: float | None = None
    completed_at: float | None = None
    progress: float = 0.0
    progress_message: str | None = None
    result: bytes | None = None
    error: str | None = None
    traceback: str | None = None
    token: int = 0  # lease token: the attempt number that holds the lease
    lease_until: float | None = None
    cancel_requested: bool = False
    stalls: int = 0  # how many times its lease lapsed (its worker died or hung)
    corrupt: str | None = None  # why the stored record cannot be read (the fields at fault), if it cannot
    # what the enqueuer's carriers put in the job (the W3C trace context): stored in the payload, no column
    # of its own, so every backend carries it; set from the payload when a worker decodes it
    headers: dict[str, str] | None = None

    def effective_status(self, now: float | None = None) -> Status:
        if self.corrupt is not None:
            return Status.CORRUPT
        status = Status(self.status)
        if status is Status.QUEUED and self.run_at > (time.time() if now is None else now):
            return Status.SCHEDULED
        return status

    @property
    def corrupt_error(self) -> str | None:
        """The error a corrupt record is shown (and dead-lettered) with; None for a sound record."""
        if self.corrupt is None:
            return None
        error = f"corrupt job record: {self.corrupt}"
        if self.error and self.error != error:
            return f"{error}; stored error: {self.error}"
        return error


@dataclass(slots=True)
class Outcome:
    """What a worker reports for one attempt; `status` QUEUED means "retry at `run_at`"."""

    id: str
    token: int
    status: Status
    result: bytes | None = None
    error: str | None = None
    traceback: str | None = None
    run_at: float = 0.0
    completed_at: float = 0.0

    @property
    def queue(self) -> str:
        return queue_of(self.id)


@dataclass(slots=True)
class JobInfo:
    """A job as `JobQueue.get()` / `list()` return it, with payload and result decoded."""

    id: str
    type: str
    queue: str
    priority: Priority
    status: Status
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    progress: float
    progress_message: str | None
    result: Any
    error: str | None
    traceback: str | None
    attempts: int
    max_attempts: int
    key: str | None
    queued_at: float
    run_at: float
    started_at: float | None
    completed_at: float | None
    cancel_requested: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def payload(self) -> dict[str, Any]:
        return {"args": list(self.args), "kwargs": self.kwargs}
