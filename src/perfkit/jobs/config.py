"""`JobsConfig`: a `JobQueue`'s settings, resolved once: argument, else `PERFKIT_JOBS_*`, else default."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from perfkit.config import parse_duration, parse_size, parse_str, setting
from perfkit.errors import ConfigurationError
from perfkit.serialization import Serializer, get_serializer

DEFAULT_URL = "sqlite:///perfkit-jobs.db"
_QUEUE_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


def check_queue(name: str) -> str:
    """`name` if it is a valid queue name (1-64 of letters, digits, `_ . -`); else a ConfigurationError."""
    if not isinstance(name, str) or not _QUEUE_NAME.match(name):
        raise ConfigurationError("queue", f"{name!r} is not a queue name (1-64 of letters, digits, _ . -)")
    return name


@dataclass(frozen=True, slots=True)
class JobsConfig:
    """Resolved settings; build one with `JobsConfig.resolve(...)`, which takes `JobQueue`'s arguments.

    A queue and its siblings on other event loops (the sync facade) share one `JobsConfig`.
    """

    url: str
    serializer: str | Serializer  # each queue builds its own from this (`serializer()`)
    pickle_key: bytes | str | None = field(repr=False)
    max_payload: int  # bytes of serialized arguments a job may carry
    retention: float  # seconds finished jobs are kept
    lease: float  # seconds a worker holds a job between renewals
    default_queue: str
    backend_options: Mapping[str, Any] = field(default_factory=dict)

    def make_serializer(self) -> Serializer:
        """A serializer of this config's kind, for one queue (each queue and sibling has its own)."""
        return get_serializer(self.serializer, pickle_key=self.pickle_key)

    @classmethod
    def resolve(
        cls,
        url: str | None = None,
        *,
        serializer: str | Serializer = "msgpack",
        pickle_key: bytes | str | None = None,
        max_payload: int | str | None = None,
        retention: float | str | None = None,
        lease: float | str | None = None,
        default_queue: str = "default",
        **backend_options: Any,
    ) -> JobsConfig:
        """Each setting from its argument, else `PERFKIT_JOBS_URL`, `PERFKIT_JOBS_MAX_PAYLOAD`,
        `PERFKIT_JOBS_RETENTION`, `PERFKIT_JOBS_LEASE`, else the default; bad values name the setting."""
        resolved_url = setting("jobs_url", url, DEFAULT_URL, parse_str)
        get_serializer(serializer, pickle_key=pickle_key)  # refuse a bad serializer here, naming it
        size = None if max_payload is None else parse_size("max_payload", max_payload)
        resolved_size = setting("jobs_max_payload", size, 1024**2, parse_size)
        keep = None if retention is None else parse_duration("retention", retention)
        resolved_retention = setting("jobs_retention", keep, 7 * 86400.0, parse_duration)
        hold = None if lease is None else parse_duration("lease", lease)
        resolved_lease = setting("jobs_lease", hold, 30.0, parse_duration)
        if resolved_lease < 0.5:
            raise ConfigurationError("lease", f"{resolved_lease}s is too short; use at least 0.5s")
        return cls(
            url=resolved_url,
            serializer=serializer,
            pickle_key=pickle_key,
            max_payload=resolved_size,
            retention=resolved_retention,
            lease=resolved_lease,
            default_queue=check_queue(default_queue),
            backend_options=dict(backend_options),
        )
