"""Run by test_fork.py in a process of its own: instrument an app, fork workers, report what each exported.

Like a gunicorn master with `preload_app`: the app is instrumented in the parent, before any SDK; each
forked worker configures its own SDK (as a `post_fork` hook would), serves requests and writes one JSON
line (its pid, span names and trace ids, its request count from the OTel histogram) to stdout.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

import httpx
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import perfkit
from perfkit.metrics import Collector
from perfkit.otel import OtelConfig


async def hello(request: Any) -> PlainTextResponse:
    return PlainTextResponse("hi")


APP = perfkit.instrument(
    Starlette(routes=[Route("/hello/{who}", hello)]), collector=Collector(), monitor=False, otel=True
)
# one instrumented with the parent's own SDK (explicit providers): its tracer is found in the parent, and
# must be found again after the fork
PARENT_SPANS = InMemorySpanExporter()
_PARENT_PROVIDER = TracerProvider()
_PARENT_PROVIDER.add_span_processor(SimpleSpanProcessor(PARENT_SPANS))
EXPLICIT = perfkit.instrument(
    Starlette(routes=[Route("/hello/{who}", hello)]), collector=Collector(), monitor=False,
    otel=OtelConfig(tracer_provider=_PARENT_PROVIDER, metrics=False),
)  # fmt: skip


async def serve(n: int, app: Any = APP) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://w") as client:
        for i in range(n):
            assert (await client.get(f"/hello/{i}")).status_code == 200


def requests_counted(reader: InMemoryMetricReader) -> int:
    data = reader.get_metrics_data()
    return sum(
        p.count
        for rm in (data.resource_metrics if data else ())
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == "http.server.request.duration"
        for p in m.data.data_points
    )


def worker(n: int) -> None:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    trace.set_tracer_provider(provider)  # the worker's own SDK, set after the fork
    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    forgot = EXPLICIT.state.perfkit.otel.telemetry.tracer_now is None
    asyncio.run(serve(n))
    finished = spans.get_finished_spans()
    line = {
        "pid": os.getpid(), "forgot": forgot, "spans": [s.name for s in finished],
        "traces": sorted({f"{s.context.trace_id:032x}" for s in finished}),
        "counted": requests_counted(reader),
    }  # fmt: skip
    # one write(2) of the whole line: the two workers share the pipe, and `print` may split a line
    # into two writes (the text, then its newline) that the other worker's line can land between
    os.write(sys.stdout.fileno(), (json.dumps(line) + "\n").encode())


def main() -> None:
    asyncio.run(serve(3))  # the master serves before any SDK: nothing recorded, nothing to inherit
    assert APP.state.perfkit.otel.telemetry.tracer() is None
    asyncio.run(serve(1, EXPLICIT))  # found its tracer (the parent's provider)
    assert EXPLICIT.state.perfkit.otel.telemetry.tracer_now is not None
    children = []
    for n in (2, 4):
        pid = os.fork()
        if pid == 0:
            try:
                worker(n)
            finally:
                os._exit(0)
        children.append(pid)
    for pid in children:
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    line = {"parent": os.getpid(), "tracer": APP.state.perfkit.otel.telemetry.tracer() is not None,
            "parent_spans": len(PARENT_SPANS.get_finished_spans())}  # fmt: skip
    print(json.dumps(line))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
