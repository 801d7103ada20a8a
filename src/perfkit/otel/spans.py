"""Spans and metrics from the lower parts' observer seams: SQL statements, cache tier operations, findings.

Each callback is told after the fact (the statement finished `elapsed` seconds after it started), so its
span is made with explicit start and end times, a child of the current span (the request's, or a job
run's). Findings (N+1 with its fix, a slow query with its shape id, the key of its EXPLAIN plan) become
events on the current span.

- `StatementSpans.statement`: `StatementObserver.add_listener`'s listener (SQLAlchemy and Django alike):
  a CLIENT span per statement (stable DB conventions: `db.system.name`, `db.operation.name`,
  `db.collection.name`, `db.query.text`) and `db.client.operation.duration`.
- `CacheSpans.operation`: a `Cache.add_observer` observer: a span per L1/L2 operation and
  `perfkit.cache.operations{perfkit.cache.namespace,tier,operation,outcome}`.
- `PublishSpans.publish`: a `Hub.add_publish_listener` listener: a PRODUCER span per real-time publish
  (`messaging.system=perfkit.realtime`, `messaging.destination.name` the channel).
- `finding_event`: `Collector.on_finding`'s hook.
"""

from __future__ import annotations

import re
from time import time_ns
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from perfkit.db.observe import operation
from perfkit.db.statements import clip
from perfkit.otel.telemetry import Telemetry

__all__ = ["CacheSpans", "PublishSpans", "StatementSpans", "finding_event"]

# SQLAlchemy dialect names -> `db.system.name` values
_SYSTEMS = {"postgresql": "postgresql", "sqlite": "sqlite", "mysql": "mysql", "mariadb": "mariadb",
            "mssql": "microsoft.sql_server", "oracle": "oracle.db"}  # fmt: skip
_TARGET = re.compile(r"""\b(?:FROM|INTO|UPDATE|JOIN)\s+([\w."`\[\]]+)""", re.IGNORECASE)
_MAX_STATEMENTS = 2000


class StatementSpans:
    """A span and a duration per SQL statement."""

    def __init__(self, telemetry: Telemetry) -> None:
        self.telemetry = telemetry
        self._known: dict[tuple[str, str], tuple[str, dict[str, Any], dict[str, Any]]] = {}

    def statement(self, dialect: str, statement: str, many: bool, elapsed: float) -> None:
        t = self.telemetry
        tracer, meters = t.now if t.final else t.current()
        if tracer is None and meters is None:
            return
        known = self._known.get((dialect, statement))
        if known is None:
            known = self._describe(dialect, statement)
        name, labels, attributes = known
        if tracer is not None:
            end = time_ns()
            span = tracer.start_span(
                name, None, SpanKind.CLIENT, attributes, start_time=end - int(elapsed * 1e9)
            )
            span.end(end)
        if meters is not None:
            meters.db_duration.record(elapsed, labels)

    def _describe(self, dialect: str, statement: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
        system = _SYSTEMS.get(dialect, dialect)
        op = operation(statement)[0]
        labels: dict[str, Any] = {"db.system.name": system}
        if op != "OTHER":
            labels["db.operation.name"] = op
        found = _TARGET.search(statement)
        target = found.group(1).strip('"`[]') if found else None
        attributes = dict(labels)
        if target:
            attributes["db.collection.name"] = target
        if self.telemetry.config.query_text:
            attributes["db.query.text"] = clip(statement)
        name = f"{op} {target}" if op != "OTHER" and target else op if op != "OTHER" else system
        known = (name, labels, attributes)
        if len(self._known) < _MAX_STATEMENTS:
            self._known[(dialect, statement)] = known
        return known


class CacheSpans:
    """A span per cache tier operation (when `cache_spans`) and the operations counter."""

    def __init__(self, telemetry: Telemetry) -> None:
        self.telemetry = telemetry
        self._labels: dict[tuple[str, str, str, str], dict[str, str]] = {}

    def operation(self, namespace: str, tier: str, op: str, outcome: str, seconds: float) -> None:
        t = self.telemetry
        tracer, meters = t.now if t.final else t.current()
        if (tracer is None and meters is None) or op == "evict":  # evictions: counted by perfkit's own stats
            return
        key = (namespace, tier, op, outcome)
        labels = self._labels.get(key)
        if labels is None:
            labels = {"perfkit.cache.namespace": namespace, "perfkit.cache.tier": tier,
                      "perfkit.cache.operation": op, "perfkit.cache.outcome": outcome}  # fmt: skip
            if len(self._labels) < 4096:
                self._labels[key] = labels
        if tracer is not None and t.config.cache_spans:
            end = time_ns()
            kind = SpanKind.CLIENT if tier == "l2" else SpanKind.INTERNAL
            span = tracer.start_span(
                f"cache {op} {tier}", None, kind, labels, start_time=end - int(seconds * 1e9)
            )
            span.end(end)
        if meters is not None:
            meters.cache_operations.add(1, labels)


class PublishSpans:
    """A PRODUCER span `send {channel}` per `Hub.publish`, a child of the current span."""

    def __init__(self, telemetry: Telemetry) -> None:
        self.telemetry = telemetry

    def publish(self, channel: str, seconds: float, error: BaseException | None) -> None:
        t = self.telemetry
        tracer = (t.now if t.final else t.current())[0]
        if tracer is None:
            return
        end = time_ns()
        attributes = {"messaging.system": "perfkit.realtime", "messaging.destination.name": channel,
                      "messaging.operation.type": "send", "messaging.operation.name": "publish"}  # fmt: skip
        span = tracer.start_span(
            f"publish {channel}", None, SpanKind.PRODUCER, attributes, start_time=end - int(seconds * 1e9)
        )
        if error is not None:
            span.set_attribute("error.type", type(error).__qualname__)
            span.set_status(Status(StatusCode.ERROR, str(error)))
        span.end(end)


_EVENT_FIELDS = {
    "n_plus_one": ("relationship", "count", "route", "fix", "message"),
    "slow_query": ("statement", "duration_ms", "route", "shape_id"),
    "repeated_query": ("statement", "shape_id", "count", "route", "message"),
    "query_plan": ("shape_id",),
    "slow_request": ("method", "route", "status", "duration_ms", "db_queries", "request_id"),
}


def finding_event(kind: str, finding: dict[str, Any]) -> None:
    """The finding as an event `perfkit.<kind>` on the current span, when it records."""
    span = trace.get_current_span()
    if not span.is_recording():
        return
    attributes: dict[str, Any] = {}
    for name in _EVENT_FIELDS.get(kind, tuple(finding)):
        value = finding.get(name)
        if isinstance(value, str | bool | int | float):
            attributes[f"perfkit.{name}"] = value
        elif isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            attributes[f"perfkit.{name}"] = list(value)
    if kind == "slow_query" and "shape_id" in finding:
        attributes["perfkit.explain_id"] = finding["shape_id"]  # the query_plan finding's (and report's) key
    span.add_event(f"perfkit.{kind}", attributes)
