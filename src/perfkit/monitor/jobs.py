"""Job metrics: a `JobQueue.on_event` hook feeding the collector, and queue depth / oldest-job sampling."""

from __future__ import annotations

import time
from typing import Any

from perfkit.metrics import Collector

_WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0)
_RUN_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class JobObserver:
    """`jobs.on_event(JobObserver(collector))`: events per queue, wait and run time histograms."""

    def __init__(self, collector: Collector) -> None:
        self.events = collector.counter("jobs_events_total", ("queue", "event"), "Job events by queue")
        self.wait = collector.histogram(
            "jobs_wait_seconds", ("queue",), "Enqueue (or due time) to start", buckets=_WAIT_BUCKETS
        )
        self.run = collector.histogram(
            "jobs_run_seconds", ("queue", "task"), "Attempt run time", buckets=_RUN_BUCKETS
        )

    def __call__(self, event: Any) -> None:
        if event.name == "progress":
            return
        self.events.inc((event.queue, event.name))
        if event.name == "started" and event.wait is not None:
            self.wait.observe((event.queue,), event.wait)
        elif event.duration is not None and event.name in ("succeeded", "failed", "cancelled", "interrupted"):
            self.run.observe((event.queue, event.task), event.duration)


def observe_jobs(jobs: Any, collector: Collector) -> bool:
    """Feed `jobs`' events into `collector` through one `JobObserver`; False when one already does
    (`instrument()` and a standalone `Monitor` may both ask: events are never counted twice)."""
    if not collector.attach(jobs, "jobs"):
        return False
    jobs.on_event(JobObserver(collector))
    return True


async def queue_status(jobs: Any, max_pages: int = 5) -> dict[str, Any]:
    """Ready jobs per queue and the age of the oldest queued job (paging at most `max_pages` x 1000)."""
    depth: dict[str, int] = {}
    for (queue, _priority), count in (await jobs.depth()).items():
        depth[queue] = depth.get(queue, 0) + count
    oldest: float | None = None
    cursor = None
    exact = True
    for _ in range(max_pages):
        page, cursor = await jobs.list(status="queued", limit=1000, cursor=cursor)
        # a corrupt record (status "corrupt") has no time to trust: it is not the oldest ready job
        ready = [j.queued_at for j in page if j.status == "queued" and j.run_at <= time.time()]
        if ready:
            candidate = min(ready)
            oldest = candidate if oldest is None else min(oldest, candidate)
        if cursor is None:
            break
    else:
        exact = cursor is None
    age = None if oldest is None else max(0.0, time.time() - oldest)
    return {"depth": depth, "total": sum(depth.values()), "oldest_age_s": age, "oldest_exact": exact}
