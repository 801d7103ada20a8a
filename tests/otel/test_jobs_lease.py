"""An attempt that ends with no outcome still gets its span: a lost lease in a worker (the `interrupted`
event), and a remote worker's lapsed lease (ended when the job's next attempt starts)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

from opentelemetry.trace import SpanKind, StatusCode

from perfkit.jobs import Context, JobQueue
from perfkit.jobs.hooks import JobEvent
from perfkit.otel import OpenTelemetry
from tests.otel.conftest import Sdk


async def test_a_lost_lease_ends_the_attempt_span_as_an_error(sdk: Sdk, tmp_path: Path) -> None:
    """A running attempt whose lease another worker takes: `interrupted` (lease lost) is emitted and its
    CONSUMER span ends with status ERROR."""
    jobs = JobQueue(f"sqlite:///{tmp_path / 'jobs.db'}", lease=0.5)
    OpenTelemetry(sdk.config).watch_jobs(jobs)
    entered = asyncio.Event()
    events: list[JobEvent] = []
    interrupted = asyncio.Event()

    def seen(e: JobEvent) -> None:
        if e.name == "interrupted":
            events.append(e)
            interrupted.set()

    jobs.on_event(seen)

    @jobs.task(queue="slow")
    async def slow(ctx: Context) -> None:
        entered.set()
        await asyncio.Event().wait()  # until the worker cancels it

    info = await slow.enqueue()
    worker = jobs.worker(["slow"], heartbeat=0.05, concurrency=1, prefetch=0)  # holds one job at most
    running = asyncio.create_task(worker.run())
    try:
        await asyncio.wait_for(entered.wait(), 5)
        await jobs.backend.reap(["slow"], time.time() + 10)  # as if its lease had lapsed ...
        assert await jobs.backend.claim(["slow"], 1, 30, time.time())  # ... and another worker took it
        await asyncio.wait_for(interrupted.wait(), 5)
    finally:
        worker.stop(hurry=True)
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(running, 5)
        await jobs.close()
    (lost,) = events
    assert lost.job_id == info.id and lost.error == "lease lost" and lost.attempt == 1
    (span,) = [s for s in sdk.named("process slow") if dict(s.attributes or {})["perfkit.job.attempt"] == 1]
    assert span.kind is SpanKind.CONSUMER and span.status.status_code is StatusCode.ERROR
    assert span.status.description == "lease lost"


def test_a_lapsed_remote_attempt_ends_when_the_next_one_starts(sdk: Sdk) -> None:
    """Attempt 1 started and never reported (a remote worker died): its span ends, as lost, when
    attempt 2 starts; attempt 2's span ends with its own outcome."""
    spans = OpenTelemetry(sdk.config).jobs

    def event(name: str, attempt: int) -> JobEvent:
        return JobEvent(name, "video:1", "video", "video", 2, attempt)

    spans.event(event("started", 1))
    assert sdk.named("process video") == []
    spans.event(event("started", 2))
    (first,) = sdk.named("process video")
    assert first.status.status_code is StatusCode.ERROR and first.status.description == "lease lost"
    spans.event(event("succeeded", 2))
    runs = sorted(sdk.named("process video"), key=lambda s: s.start_time or 0)
    assert [dict(s.attributes or {})["perfkit.job.attempt"] for s in runs] == [1, 2]
    assert runs[1].status.status_code is StatusCode.UNSET
