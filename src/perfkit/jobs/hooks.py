"""Hooks for monitoring: one callback sees every job event, wherever it happens (enqueuer or worker).

Events: enqueued, started, progress, succeeded, failed (an attempt failed), retried (scheduled again),
dead (dead-lettered: out of attempts or unrunnable), cancelled. A failing hook is logged and ignored:
monitoring never breaks the queue. `Hooks.emit` is the one place a `JobEvent` is built, and only when
a hook listens, so callers never guard it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from perfkit.jobs.models import JobRecord

logger = logging.getLogger("perfkit.jobs")

EVENTS = frozenset({"enqueued", "started", "progress", "succeeded", "failed", "retried", "dead", "cancelled"})


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


Hook = Callable[[JobEvent], None]


class Hooks:
    """The event emitter of one queue (shared by its siblings and workers): hooks added, events sent."""

    def __init__(self) -> None:
        self._hooks: list[Hook] = []

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
            duration=duration, wait=wait, error=error, progress=progress,
        )  # fmt: skip
        for hook in self._hooks:
            try:
                hook(event)
            except Exception:
                logger.exception("job hook %r failed on %s", hook, event.name)
