"""perfkit.otel in `perfkit serve` (a real uvicorn server in this process, the real SDK): the Python client
sends the current trace context, the service's spans continue it, a job queued through it carries it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from opentelemetry.trace import SpanKind

from perfkit.serve import ServeClient
from perfkit.serve.app import ServeApp
from perfkit.serve.config import ServeConfig
from tests.conftest import eventually, free_port
from tests.otel.conftest import Sdk

SECRET = "otel-serve-test-token-0123456789"
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
async def service(sdk: Sdk, tmp_path: Path) -> AsyncIterator[str]:
    """`perfkit serve`'s app with OTel on (the test SDK's providers) under uvicorn; its base URL."""
    (tmp_path / "tokens.txt").write_text(f"app {SECRET} admin\n")
    config = ServeConfig.resolve(
        cache_url=f"sqlite:///{tmp_path}/cache.db", jobs_url=f"sqlite:///{tmp_path}/jobs.db",
        token_file=str(tmp_path / "tokens.txt"), tasks=("tests.serve.tasks:jobs",),
        job_types=("video=remote",),
    )  # fmt: skip
    port = free_port()
    app = ServeApp(config, otel=sdk.config)
    server = uvicorn.Server(uvicorn.Config(app, port=port, lifespan="on", log_level="warning"))
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        return server.started

    await eventually(started, timeout=10, what="uvicorn started")
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task


def servers(sdk: Sdk) -> list[Any]:
    return [s for s in sdk.finished() if s.kind is SpanKind.SERVER]


async def test_client_calls_continue_the_callers_trace_and_jobs_carry_it(service: str, sdk: Sdk) -> None:
    """Inside a span, ServeClient sends `traceparent`: each call is a SERVER span (named by its route
    template) under the caller's span; the job it queues is a PRODUCER span there, and its run in the
    service's worker a CONSUMER span linked to the request that queued it."""
    client = ServeClient(service, SECRET)
    tracer = sdk.config.tracer_provider.get_tracer("caller")
    try:
        with tracer.start_as_current_span("caller") as caller:
            await client.set("k", {"v": 1})
            assert await client.get("k") == {"v": 1}
            job = await client.enqueue("resize", 8, 4)

        async def done() -> bool:
            return (await client.job(job["id"]))["status"] == "succeeded"

        await eventually(done, timeout=10, what="the job ran", max_interval=0.05)
    finally:
        await client.close()
    context = caller.get_span_context()
    traced = [s for s in servers(sdk) if s.context.trace_id == context.trace_id]
    assert [s.name for s in traced] == [
        "PUT /v1/cache/{namespace}/keys/{key...}", "GET /v1/cache/{namespace}/keys/{key...}", "POST /v1/jobs",
    ]  # fmt: skip
    assert all(s.parent is not None and s.parent.span_id == context.span_id for s in traced)
    assert traced[2].attributes["http.route"] == "/v1/jobs"
    assert traced[2].attributes["http.response.status_code"] == 201
    [send] = [s for s in sdk.finished() if s.kind is SpanKind.PRODUCER]
    assert send.name == "send images" and send.parent.span_id == traced[2].context.span_id
    [run] = [s for s in sdk.finished() if s.kind is SpanKind.CONSUMER]
    assert [link.context.span_id for link in run.links] == [traced[2].context.span_id]
    assert run.attributes["messaging.message.id"] == job["id"]
    untraced = [s for s in servers(sdk) if s.context.trace_id != context.trace_id]
    assert all(s.name == "GET /v1/jobs/{id}" and s.parent is None for s in untraced)  # (outside the span)


async def test_incoming_traceparent_and_unmatched_routes(service: str, sdk: Sdk) -> None:
    """Any client's `traceparent` is continued; a path no route matches is a span named by its method."""
    headers = {"authorization": f"Bearer {SECRET}", "traceparent": TRACEPARENT}
    async with httpx.AsyncClient(base_url=service, headers=headers) as http:
        assert (await http.get("/v1/health")).status_code == 200
        assert (await http.get("/v1/no/such")).status_code == 404
    health, missing = servers(sdk)
    assert health.name == "GET /v1/health"
    assert format(health.context.trace_id, "032x") == "0af7651916cd43dd8448eb211c80319c"
    assert format(health.parent.span_id, "016x") == "b7ad6b7169203331"
    assert missing.name == "GET" and missing.attributes["http.response.status_code"] == 404


async def test_a_remote_worker_gets_the_trace_context_of_the_request_that_queued_it(
    service: str, sdk: Sdk, caplog: pytest.LogCaptureFixture
) -> None:
    """A remote job type: the claimed job carries `headers.traceparent` (the queuing request's span), its
    CONSUMER span (claim to complete) links to that request, and no context is left dangling."""
    client = ServeClient(service, SECRET)
    tracer = sdk.config.tracer_provider.get_tracer("caller")
    try:
        with tracer.start_as_current_span("caller"):
            job = await client.enqueue("video", "clip.mp4")
        [claimed] = await client.claim(["video"])
        await client.complete(claimed["id"], claimed["token"], {"ok": True})
    finally:
        await client.close()
    [queued] = [s for s in servers(sdk) if s.name == "POST /v1/jobs"]
    trace_id, span_id = format(queued.context.trace_id, "032x"), format(queued.context.span_id, "016x")
    assert claimed["id"] == job["id"]
    assert claimed["headers"]["traceparent"].startswith(f"00-{trace_id}-{span_id}-")
    [run] = [s for s in sdk.finished() if s.kind is SpanKind.CONSUMER]
    assert [link.context.span_id for link in run.links] == [queued.context.span_id]
    assert not [r for r in caplog.records if "detach" in r.getMessage().lower()]
