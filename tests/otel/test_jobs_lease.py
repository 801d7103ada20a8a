"""An attempt that ends with no outcome still gets its span: a lost lease in a worker (the `interrupted`
event), and a remote worker's lapsed lease (ended when the job's next attempt starts); a remote claim
of an undecodable job opens none."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.trace import SpanKind, StatusCode

from perfkit.jobs import Context, JobQueue
from perfkit.jobs.hooks import JobEvent
from perfkit.otel import OpenTelemetry
from perfkit.serve.app import ServeApp
from perfkit.serve.config import ServeConfig
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


class OpenSpans(SpanProcessor):
    """Counts the CONSUMER spans started and not (yet) ended."""

    def __init__(self) -> None:
        self.open = 0

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        self.open += span.kind is SpanKind.CONSUMER

    def on_end(self, span: Any) -> None:
        self.open -= span.kind is SpanKind.CONSUMER


async def test_a_remote_claim_of_an_undecodable_payload_leaves_no_span_open(sdk: Sdk, tmp_path: Path) -> None:
    """`perfkit serve` claiming a job whose payload cannot be decoded: `dead` (with the reason) as a
    Python worker emits it, no `started`, the job DEAD, and no attempt span left open."""
    (tmp_path / "tokens.txt").write_text("w secret-token-0123456789abcdef admin\n")
    config = ServeConfig.resolve(
        cache_url=f"sqlite:///{tmp_path}/cache.db", jobs_url=f"sqlite:///{tmp_path}/jobs.db",
        token_file=str(tmp_path / "tokens.txt"), job_types=("video=remote",),
    )  # fmt: skip
    opened = OpenSpans()
    sdk.config.tracer_provider.add_span_processor(opened)
    app = ServeApp(config, otel=sdk.config)
    events: list[JobEvent] = []
    app.jobs.on_event(events.append)
    headers = {"authorization": "Bearer secret-token-0123456789abcdef"}
    transport = httpx.ASGITransport(app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=headers) as http:
            job = (await http.post("/v1/jobs", json={"type": "video", "args": ["clip.mp4"]})).json()
            backend: Any = app.jobs.backend
            with sqlite3.connect(backend.path) as conn:  # msgpack has no 0xc1: not decodable
                conn.execute(f"UPDATE {backend.table} SET payload = ? WHERE id = ?", (b"\xc1", job["id"]))
            claimed = await http.post("/v1/workers/claim", json={"types": ["video"]})
            assert claimed.status_code == 200 and claimed.json()["jobs"] == []
            info = (await http.get(f"/v1/jobs/{job['id']}")).json()
    finally:
        await app.close()
    assert [e.name for e in events] == ["enqueued", "dead"]
    assert "cannot be decoded" in (events[1].error or "") and events[1].job_id == job["id"]
    assert info["status"] == "dead" and "cannot be decoded" in info["error"]
    assert opened.open == 0
