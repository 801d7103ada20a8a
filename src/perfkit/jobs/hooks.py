"""Hooks for monitoring: one callback sees every job event, wherever it happens (enqueuer or worker).

Carriers (`add_carrier`) put headers in a job at enqueue (perfkit.otel: the W3C trace context); they
travel inside the payload and come back on the job's events as `JobEvent.headers`.

Events: enqueued, started, progress, succeeded, failed (an attempt failed), retried (scheduled again),
dead (dead-lettered: out of attempts or unrunnable), cancelled, interrupted (an attempt stopped with no
outcome: its lease was lost, or its worker shut down and handed it back; `error` says which, and the
job runs again as its next attempt). A failing hook is logged and ignored:
monitoring never breaks the queue. `Hooks.emit` is the one place a `JobEvent` is built, and only when
a hook listens, so callers never guard it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from perfkit.jobs.models import JobRecord

logger = logging.getLogger("perfkit.jobs")

EVENTS = frozenset(
    {"enqueued", "started", "progress", "succeeded", "failed", "retried", "dead", "cancelled", "interrupted"}
)


@dataclass(frozen=True, slots=True)
class JobEvent:
    name: str
    job_id: str
    task: str
    queue: str
    priority: int
    attempt: int = 0
    duration: float | None = None  # seconds the attempt ran (started -> outcome)
    wait: float | None = None  # seconds from enqueue (or its scheduled time) to start
    error: str | None = None
    progress: float | None = None
    headers: Mapping[str, str] | None = None  # what the enqueuer's carriers put in the job (trace context)


Hook = Callable[[JobEvent], None]
# At enqueue, in the enqueuer's context: headers to carry in the job (W3C `traceparent`, ...), or None.
Carrier = Callable[[], Mapping[str, str] | None]


class Hooks:
    """The event emitter of one queue (shared by its siblings and workers): hooks added, events sent."""

    def __init__(self) -> None:
        self._hooks: list[Hook] = []
        self.carriers: list[Carrier] = []

    def add_carrier(self, carrier: Carrier) -> Carrier:
        """Carry what `carrier()` returns at enqueue in every job (its events' `headers` on the worker)."""
        if carrier not in self.carriers:
            self.carriers.append(carrier)
        return carrier

    def carried(self) -> dict[str, str] | None:
        """The headers the carriers give for a job enqueued now (None: nothing to carry)."""
        headers: dict[str, str] = {}
        for carrier in self.carriers:
            try:
                found = carrier()
            except Exception:
                logger.exception("job carrier %r failed", carrier)
                continue
            if found:
                headers.update(found)
        return headers or None

    def add(self, hook: Hook) -> Hook:
        self._hooks.append(hook)
        return hook

    def __bool__(self) -> bool:
        return bool(self._hooks)

    def emit(
        self,
        name: str,
        record: JobRecord,
        *,
        attempt: int | None = None,
        duration: float | None = None,
        wait: float | None = None,
        error: str | None = None,
        progress: float | None = None,
    ) -> None:
        """Send event `name` about `record` (its attempt unless `attempt` is given) to every hook."""
        if not self._hooks:
            return
        r = record
        event = JobEvent(
            name, r.id, r.task, r.queue, r.priority, r.attempts if attempt is None else attempt,
            duration=duration, wait=wait, error=error, progress=progress, headers=r.headers,
        )  # fmt: skip
        for hook in self._hooks:
            try:
                hook(event)
            except Exception:
                logger.exception("job hook %r failed on %s", hook, event.name)
