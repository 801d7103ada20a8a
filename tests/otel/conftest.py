"""A real OpenTelemetry SDK per test, with an in-memory span exporter and metric reader.

The providers are given to perfkit through `OtelConfig`, never set globally: the global ones stay the
API's proxies in the test process, which is what `test_no_sdk_*` checks against.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from perfkit.otel import OtelConfig


@dataclass
class Sdk:
    spans: InMemorySpanExporter
    reader: InMemoryMetricReader
    config: OtelConfig

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.finished() if s.name == name]

    def points(self, metric: str) -> list[Any]:
        """The data points of one metric, as the reader collects them now."""
        data = self.reader.get_metrics_data()
        found = []
        for rm in data.resource_metrics if data is not None else ():
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    if m.name == metric:
                        found.extend(m.data.data_points)
        return found


@pytest.fixture
def sdk() -> Iterator[Sdk]:
    """A TracerProvider and MeterProvider of the real SDK, exporting to memory."""
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    yield Sdk(spans, reader, OtelConfig(tracer_provider=tracer_provider, meter_provider=meter_provider))
    tracer_provider.shutdown()
    meter_provider.shutdown()
