"""OpenTelemetry export: perfkit's requests, SQL, cache operations, jobs and findings as OTel spans and
metrics, through `opentelemetry-api` only (`pip install 'perfkit[otel]'`). perfkit never configures an
SDK: the application does, and until it has, every hook costs one check and records nothing.

    perfkit.instrument(app, engine=engine, cache=cache, jobs=jobs, otel=True)

`OpenTelemetry` subscribes to the lower parts' seams, wired by `instrument()`: the web pipeline's tracer
(a server span per request), the statement observer's listeners (SQL spans), the cache's observers, the
job queue's events and carriers (the W3C trace context travels in the job), the collector's findings
(span events), a real-time hub's publish listeners. Django projects: `PERFKIT["otel"]`
(`perfkit.django.otel`). See docs/observability.md.
"""

from __future__ import annotations

import weakref
from typing import Any

from perfkit.otel.config import OtelConfig
from perfkit.otel.jobs import JobSpans
from perfkit.otel.spans import CacheSpans, PublishSpans, StatementSpans, finding_event
from perfkit.otel.telemetry import Meters, Telemetry
from perfkit.otel.web import RequestTracer

__all__ = ["Meters", "OpenTelemetry", "OtelConfig", "Telemetry"]


class OpenTelemetry:
    """perfkit's OTel reporting for one configuration: `requests` is the web pipeline's tracer; the
    `watch_*` methods subscribe to one part each (each at most once)."""

    def __init__(self, config: OtelConfig | None = None) -> None:
        self.telemetry = Telemetry(config)
        self.requests = RequestTracer(self.telemetry)
        self.statements = StatementSpans(self.telemetry)
        self.cache = CacheSpans(self.telemetry)
        self.jobs = JobSpans(self.telemetry)
        self.hubs = PublishSpans(self.telemetry)
        self._watched: weakref.WeakSet[Any] = weakref.WeakSet()

    def _first(self, source: Any) -> bool:
        if source in self._watched:
            return False
        self._watched.add(source)
        return True

    def watch_statements(self, observer: Any) -> None:
        """Spans for the statements of a `perfkit.db.observe.StatementObserver` (an engine's hooks)."""
        observer.add_listener(self.statements.statement)

    def unwatch_statements(self, observer: Any) -> None:
        """No more spans for `observer`'s statements (its engine's hooks outlive this instrumentation
        when another one shares them)."""
        observer.remove_listener(self.statements.statement)

    def watch_cache(self, cache: Any) -> None:
        """Spans and counts for a `perfkit.Cache`'s tier operations."""
        if self._first(cache):
            cache.add_observer(self.cache.operation)

    def watch_jobs(self, jobs: Any) -> None:
        """Spans for a `JobQueue`'s enqueues and attempts; the trace context travels in its jobs."""
        if self._first(jobs.hooks):
            jobs.hooks.add_carrier(self.jobs.carry)
            jobs.on_event(self.jobs.event)

    def watch_hub(self, hub: Any) -> None:
        """A PRODUCER span per `publish` of a `perfkit.realtime.Hub` (and of its siblings)."""
        hub.add_publish_listener(self.hubs.publish)

    def watch_findings(self, collector: Any) -> None:
        """The collector's findings as events on the current span (once per collector)."""
        if collector.attach(collector, "perfkit.otel.findings"):
            collector.on_finding(finding_event)
