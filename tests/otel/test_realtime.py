"""perfkit.otel on a real-time hub: a PRODUCER span per publish (memory and Redis brokers), an error span
when the broker is down."""

from __future__ import annotations

import uuid

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from perfkit.errors import BackendError
from perfkit.otel import OpenTelemetry
from perfkit.realtime import Hub
from tests.conftest import REDIS_URL, free_port, require_redis
from tests.otel.conftest import Sdk


@pytest.mark.parametrize("broker", ["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def test_each_publish_is_a_producer_span_under_the_current_one(sdk: Sdk, broker: str) -> None:
    """`watch_hub`: `publish` makes a PRODUCER span `publish {channel}` (messaging.system, destination)
    under the current span, siblings included; nothing else is traced."""
    if broker == "redis":
        require_redis()
    url = "memory://" if broker == "memory" else f"{REDIS_URL}?prefix=pkotel-{uuid.uuid4().hex[:8]}"
    hub = Hub(url)
    otel = OpenTelemetry(sdk.config)
    otel.watch_hub(hub)
    otel.watch_hub(hub)  # (once)
    tracer = sdk.config.tracer_provider.get_tracer("test")
    try:
        with tracer.start_as_current_span("request") as parent:
            await hub.publish("room:1", {"text": "hi"})
        twin = hub.sibling()
        await twin.publish("room:2", 1)
        await twin.close()
    finally:
        await hub.close()
    spans = [s for s in sdk.finished() if s.kind is SpanKind.PRODUCER]
    assert [s.name for s in spans] == ["publish room:1", "publish room:2"]
    first = spans[0]
    assert first.parent is not None and first.parent.span_id == parent.get_span_context().span_id
    assert first.attributes["messaging.system"] == "perfkit.realtime"
    assert first.attributes["messaging.destination.name"] == "room:1"
    assert first.attributes["messaging.operation.type"] == "send"
    assert first.end_time > first.start_time
    assert spans[1].parent is None


async def test_a_failed_publish_is_an_error_span(sdk: Sdk) -> None:
    """A broker that is down: the publish raises as before and its span has status ERROR and error.type."""
    hub = Hub(f"redis://127.0.0.1:{free_port()}/0")
    OpenTelemetry(sdk.config).watch_hub(hub)
    try:
        with pytest.raises(BackendError) as raised:
            await hub.publish("room:1", 1)
    finally:
        await hub.close()
    [span] = sdk.finished()
    assert span.name == "publish room:1" and span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == type(raised.value).__qualname__


async def test_no_sdk_publish_records_nothing() -> None:
    """With the API's proxy provider only (no SDK) the listener returns after one check."""
    hub = Hub("memory://")
    otel = OpenTelemetry()
    otel.watch_hub(hub)
    try:
        await hub.publish("room:1", 1)
    finally:
        await hub.close()
    assert otel.telemetry.now == (None, None)
