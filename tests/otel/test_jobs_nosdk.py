"""Jobs carry the W3C trace context: the run span links to the request that enqueued it. And without an
SDK, perfkit.otel records nothing at all."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode
from sqlalchemy import create_engine, text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import perfkit
from perfkit.jobs import Context, JobQueue
from perfkit.metrics import Collector
from perfkit.otel import OpenTelemetry
from tests.conftest import redis_missing, service_missing
from tests.jobs.conftest import backend_url, drop_backend_data
from tests.otel.conftest import Sdk


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
async def queue(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[JobQueue]:
    """A real job queue on SQLite or Redis (a key prefix of its own, dropped afterwards)."""
    if request.param == "redis" and (reason := redis_missing()) is not None:
        service_missing(reason)
    jobs = JobQueue(backend_url(request.param, tmp_path))
    assert jobs.backend.kind == request.param
    yield jobs
    await drop_backend_data(jobs)
    await jobs.close()


def make_app(jobs: JobQueue, engine: Any, otel: Any) -> Any:
    @jobs.task(name="report", retries=1, backoff=0)
    async def report(ctx: Context, n: int) -> int:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        if n < 0 and ctx.attempt == 1:
            raise ValueError("first attempt fails")
        return n * 2

    async def enqueue(request: Request) -> JSONResponse:
        n = int(request.path_params["n"])
        info = await report.enqueue(n)
        return JSONResponse({"id": info.id, "span": trace.get_current_span().get_span_context().span_id})

    app = Starlette(routes=[Route("/reports/{n}", enqueue, methods=["POST"])])
    return perfkit.instrument(app, jobs=jobs, engine=engine, collector=Collector(), monitor=False, otel=otel)


async def post(app: Any, path: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://testserver") as client:
        return await client.post(path)


async def test_job_run_span_links_to_the_enqueuing_request(sdk: Sdk, queue: JobQueue, tmp_path: Path) -> None:
    """Enqueued in a request, run by a real worker: a PRODUCER span under the request, a CONSUMER span
    per attempt linked to the request's span, the job's SQL under the attempt's span."""
    engine = create_engine(f"sqlite:///{tmp_path / 'jobs-sql.db'}")
    app = make_app(queue, engine, sdk.config)
    response = await post(app, "/reports/21")
    job_id = response.json()["id"]
    (server,) = sdk.named("POST /reports/{n}")
    (send,) = sdk.named(f"send {queue.default_queue}")
    assert send.kind is SpanKind.PRODUCER and send.parent is not None
    assert send.parent.span_id == server.context.span_id
    assert dict(send.attributes or {})["messaging.message.id"] == job_id

    await queue.worker(burst=True).run()
    assert (await queue.get(job_id)).result == 42  # type: ignore[union-attr]
    (run,) = sdk.named(f"process {queue.default_queue}")
    assert run.kind is SpanKind.CONSUMER and run.parent is None  # a trace of its own ...
    (link,) = run.links
    assert link.context.trace_id == server.context.trace_id  # ... linked to the request that enqueued it
    assert link.context.span_id == server.context.span_id == response.json()["span"]
    attrs = dict(run.attributes or {})
    assert (
        attrs["messaging.destination.name"] == queue.default_queue and attrs["perfkit.job.task"] == "report"
    )
    (sql,) = [s for s in sdk.named("SELECT") if s.context.trace_id == run.context.trace_id]
    assert sql.parent is not None and sql.parent.span_id == run.context.span_id
    (process,) = sdk.points("messaging.process.duration")
    assert process.count == 1 and {e.trace_id for e in process.exemplars} <= {run.context.trace_id}
    assert sdk.points("perfkit.job.wait.duration")[0].count == 1


async def test_failed_attempt_span_is_an_error_and_the_retry_links_too(
    sdk: Sdk, queue: JobQueue, tmp_path: Path
) -> None:
    """A failing first attempt ends its span with status ERROR; the retry gets its own span, same link."""
    engine = create_engine(f"sqlite:///{tmp_path / 'jobs-sql.db'}")
    app = make_app(queue, engine, sdk.config)
    job_id = (await post(app, "/reports/-1")).json()["id"]
    (server,) = sdk.named("POST /reports/{n}")
    await queue.worker(burst=True).run()
    await queue.worker(burst=True).run()  # (backoff=0: the first burst may run the retry too)
    runs = sorted(sdk.named(f"process {queue.default_queue}"), key=lambda s: s.start_time or 0)
    assert [s.status.status_code for s in runs] == [StatusCode.ERROR, StatusCode.UNSET], job_id
    assert dict(runs[0].attributes or {})["error.type"] == "ValueError"
    assert all(s.links[0].context.span_id == server.context.span_id for s in runs)


async def test_no_sdk_no_spans_and_jobs_unchanged(queue: JobQueue, tmp_path: Path) -> None:
    """With no SDK registered (the global providers are the API's proxies), otel=True records nothing:
    no tracer or instrument is made, no span is current in the app, no header goes into a job."""
    assert type(trace.get_tracer_provider()).__name__ == "ProxyTracerProvider"
    engine = create_engine(f"sqlite:///{tmp_path / 'jobs-sql.db'}")
    app = make_app(queue, engine, True)
    otel: OpenTelemetry = app.state.perfkit.otel
    response = await post(app, "/reports/2")
    assert response.json()["span"] == 0  # INVALID_SPAN: nothing started a span
    await queue.worker(burst=True).run()
    record = await queue.backend.get(response.json()["id"])
    assert record is not None and record.headers is None
    assert queue.serializer.loads(record.payload) == [[2], {}]  # the payload perfkit wrote before otel
    assert otel.telemetry.tracer_now is None and otel.telemetry.meters_now is None
    assert otel.telemetry.tracer() is None and otel.telemetry.meters() is None


def test_payload_headers_round_trip_and_bad_ones_are_refused() -> None:
    """`[args, kwargs]` and `[args, kwargs, headers]` unpack; anything else is a ValueError naming it
    (the worker dead-letters such a job as undecodable instead of running it)."""
    from perfkit.jobs.models import pack_payload, unpack_payload

    assert pack_payload([1], {}, None) == [[1], {}]
    assert unpack_payload(pack_payload([1], {"a": 2}, {"traceparent": "00-x"})) == (
        [1],
        {"a": 2},
        {"traceparent": "00-x"},
    )
    for bad in ([[1]], [[1], {}, {"traceparent": 3}], [[1], {}, ["x"]], {"args": []}):
        with pytest.raises(ValueError, match="job payload"):
            unpack_payload(bad)
