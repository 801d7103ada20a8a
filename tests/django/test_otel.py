"""PERFKIT["otel"] in a Django project, with the real OpenTelemetry SDK exporting to memory: a server span per
request named by the URL pattern (WSGI and ASGI test clients), SQL and cache children, job enqueue and run
linked by the trace context, N+1 findings as events, real-time publish spans; nothing with it off."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from perfkit.django import otel as django_otel
from perfkit.django.conf import parse
from perfkit.django.jobs import get_queue, project
from perfkit.django.jobs_worker import worker_queue
from perfkit.errors import ConfigurationError
from perfkit.otel import OtelConfig
from perfkit.realtime import Hub
from tests.django import otel_urls
from tests.django.tickets.models import Organization, Ticket
from tests.django.web_support import MIDDLEWARE
from tests.otel.conftest import Sdk

pytestmark = [pytest.mark.urls("tests.django.otel_urls")]
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"
PERFKIT_CACHE = {"BACKEND": "perfkit.django.cache.PerfkitCache", "LOCATION": "memory://"}


@pytest.fixture
def sdk(settings: Any) -> Iterator[Sdk]:
    """The project with perfkit's middleware and PERFKIT['otel'] pointing at an SDK of its own."""
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    config = OtelConfig(tracer_provider=tracer_provider, meter_provider=meter_provider)
    settings.MIDDLEWARE = MIDDLEWARE
    settings.PERFKIT = {
        "monitor": {"token": "test-token"},
        "db": {"nplusone_threshold": 3},
        "otel": {"tracer_provider": tracer_provider, "meter_provider": meter_provider},
    }
    yield Sdk(spans, reader, config)
    tracer_provider.shutdown()
    meter_provider.shutdown()


def server_spans(sdk: Sdk) -> list[ReadableSpan]:
    return [s for s in sdk.finished() if s.kind is SpanKind.SERVER]


def children(sdk: Sdk, parent: ReadableSpan) -> list[ReadableSpan]:
    return [s for s in sdk.finished() if s.parent is not None and s.parent.span_id == parent.context.span_id]


def test_setting_takes_true_false_or_otelconfig_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    """PERFKIT['otel']: True, False or a dict of OtelConfig fields; unset follows PERFKIT_OTEL; bad values
    name the key."""
    monkeypatch.delenv("PERFKIT_OTEL", raising=False)
    assert parse({}).otel is None and parse({"otel": False}).otel is None
    assert parse({"otel": True}).otel == OtelConfig()
    assert parse({"otel": {"cache_spans": False}}).otel == OtelConfig(cache_spans=False)
    monkeypatch.setenv("PERFKIT_OTEL", "1")
    assert parse({}).otel == OtelConfig() and parse({"otel": False}).otel is None
    for bad in ("yes", {"spans": True}, {"traces": "on"}):
        with pytest.raises(ConfigurationError, match=r"PERFKIT\['otel'\]"):
            parse({"otel": bad})


@pytest.mark.django_db
def test_wsgi_request_is_one_server_span_named_by_url_pattern(client: Any, sdk: Sdk) -> None:
    """A sync view: one SERVER span `GET /orgs/<int:pk>/` (the URL pattern, never the path), stable HTTP
    attributes, its two SQL statements CLIENT children, and http.server.request.duration by route."""
    assert client.get("/orgs/7/").status_code == 200
    [server] = server_spans(sdk)
    assert server.name == "GET /orgs/<int:pk>/"
    attrs = dict(server.attributes or {})
    assert attrs["http.route"] == "/orgs/<int:pk>/" and attrs["url.path"] == "/orgs/7/"
    assert attrs["http.request.method"] == "GET" and attrs["http.response.status_code"] == 200
    sql = children(sdk, server)
    assert [s.name for s in sql] == ["INSERT tickets_organization", "SELECT tickets_organization"]
    assert all(s.kind is SpanKind.CLIENT and s.attributes["db.system.name"] == "sqlite" for s in sql)
    [point] = [p for p in sdk.points("http.server.request.duration") if p.attributes.get("http.route")]
    assert point.attributes["http.route"] == "/orgs/<int:pk>/" and point.count == 1


@pytest.mark.django_db(transaction=True)
async def test_asgi_request_continues_incoming_traceparent(async_client: Any, sdk: Sdk) -> None:
    """An async view under the ASGI handler: the server span continues the incoming `traceparent`, and
    the ORM's statements (run in sync_to_async's thread) are its children."""
    response = await async_client.get("/async/orgs/3/", headers={"traceparent": TRACEPARENT})
    assert response.status_code == 200
    [server] = server_spans(sdk)
    assert server.name == "GET /async/orgs/<int:pk>/"
    assert format(server.context.trace_id, "032x") == TRACE_ID
    assert server.parent is not None and format(server.parent.span_id, "016x") == "b7ad6b7169203331"
    assert len([s for s in children(sdk, server) if s.kind is SpanKind.CLIENT]) == 2


def test_failure_unmatched_and_monitor_paths(client: Any, sdk: Sdk) -> None:
    """A view that raises: status ERROR, error.type the exception's type, the exception recorded; a 404
    is named by its method alone; perfkit's monitor views make no span."""
    client.raise_request_exception = False
    assert client.get("/fail/").status_code == 500
    assert client.get("/no/such/page/").status_code == 404
    assert client.get("/perf/metrics", headers={"Authorization": "Bearer test-token"}).status_code == 200
    failed, missing = server_spans(sdk)
    assert failed.name == "GET /fail/" and failed.status.status_code is StatusCode.ERROR
    assert failed.attributes["error.type"] == "LookupError"
    assert [e.name for e in failed.events] == ["exception"]
    assert missing.name == "GET" and "http.route" not in missing.attributes
    assert missing.attributes["http.response.status_code"] == 404


def test_a_streamed_response_span_ends_with_its_stream(client: Any, sdk: Sdk) -> None:
    """A streamed response: the span is left when the view returns and ends when the stream is consumed."""
    response = client.get("/stream/")
    assert server_spans(sdk) == []  # (the stream is not consumed yet)
    assert b"".join(response.streaming_content) == b"abc"
    [server] = server_spans(sdk)
    assert server.name == "GET /stream/" and server.attributes["http.response.status_code"] == 200


@pytest.mark.django_db
def test_n_plus_one_and_slow_request_are_events_on_the_span(client: Any, sdk: Sdk, settings: Any) -> None:
    """The N+1 a view makes is an event `perfkit.n_plus_one` on its span, with the fix; the slow-request
    finding (logged after the response) an event `perfkit.slow_request` on it too."""
    settings.PERFKIT = {**settings.PERFKIT, "web": {"slow_request": 1e-9}}
    org = Organization.objects.create(name="acme")
    Ticket.objects.bulk_create([Ticket(organization=org, title=f"t{i}") for i in range(4)])
    assert client.get("/naive/").status_code == 200
    [server] = server_spans(sdk)
    [event] = [e for e in server.events if e.name == "perfkit.n_plus_one"]
    assert "select_related" in str(event.attributes["perfkit.fix"])
    [slow] = [e for e in server.events if e.name == "perfkit.slow_request"]
    assert slow.attributes["perfkit.route"] == "/naive/"


def test_cache_operations_are_children_of_the_request(client: Any, sdk: Sdk, settings: Any) -> None:
    """The perfkit cache behind CACHES (PerfkitCache): its tier operations are spans under the request."""
    settings.CACHES = {"default": PERFKIT_CACHE}
    assert client.get("/cached/").content == b"v"
    [server] = server_spans(sdk)
    names = [s.name for s in children(sdk, server)]
    assert "cache set l1" in names and "cache get l1" in names


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", ["/enqueue/", "/async/enqueue/"])
def test_job_carries_the_request_context_and_its_run_links_to_it(
    client: Any, async_client: Any, sdk: Sdk, settings: Any, tmp_path: Path, path: str
) -> None:
    """A job queued by a view (sync, and async): a PRODUCER span under the request, the trace context in
    the job; the worker's CONSUMER span links to the request and its SQL is the run span's child."""
    settings.PERFKIT = {**settings.PERFKIT, "jobs": f"sqlite:///{tmp_path}/jobs.db"}
    try:
        response = asyncio.run(async_client.get(path)) if path.startswith("/async") else client.get(path)
        assert response.status_code == 200
        queue = get_queue()
        assert queue is not None

        async def work() -> None:
            await worker_queue(queue).worker([otel_urls.QUEUE], burst=True).run()

        asyncio.run(work())
    finally:
        project.close()
    [server] = server_spans(sdk)
    [send] = [s for s in sdk.finished() if s.kind is SpanKind.PRODUCER]
    assert send.name == f"send {otel_urls.QUEUE}" and send.parent.span_id == server.context.span_id
    [run] = [s for s in sdk.finished() if s.kind is SpanKind.CONSUMER]
    assert run.context.trace_id != server.context.trace_id
    assert [link.context.span_id for link in run.links] == [server.context.span_id]
    assert run.attributes["messaging.message.id"] == response.json()["job"]
    assert run.status.status_code is StatusCode.UNSET, run.status
    assert [s.name for s in children(sdk, run)] == ["SELECT"]


async def test_publish_is_a_producer_span(async_client: Any, sdk: Sdk) -> None:
    """`watch_hub(hub)`: each publish is a PRODUCER span `publish {channel}` under the request."""
    hub = Hub("memory://")
    django_otel.watch_hub(hub)
    otel_urls.HUB[:] = [hub]
    try:
        assert (await async_client.get("/publish/")).status_code == 200
    finally:
        await hub.close()
    [server] = server_spans(sdk)
    [publish] = [s for s in sdk.finished() if s.kind is SpanKind.PRODUCER]
    assert publish.name == "publish room:1" and publish.parent.span_id == server.context.span_id
    assert publish.attributes["messaging.system"] == "perfkit.realtime"
    assert publish.attributes["messaging.destination.name"] == "room:1"


def test_off_or_without_an_sdk_nothing_is_traced(client: Any, settings: Any) -> None:
    """With PERFKIT['otel'] off the middleware has no tracer; on with no SDK registered (the API's proxy
    provider) a request starts nothing."""
    from perfkit.django.middleware_policies import current

    settings.MIDDLEWARE = MIDDLEWARE
    settings.PERFKIT = {"monitor": False}
    assert current().tracer is None and django_otel.project.now is None
    settings.PERFKIT = {"monitor": False, "otel": True}
    tracer = current().tracer
    assert tracer is not None
    assert client.get("/no/such/page/").status_code == 404
    assert tracer.telemetry.now == (None, None)
