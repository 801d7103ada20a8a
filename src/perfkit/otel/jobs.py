"""Job spans: a PRODUCER span per enqueue, a CONSUMER span per attempt, linked by the W3C trace context.

`carry()` is the queue's carrier (`Hooks.add_carrier`): at enqueue, in the request's context, it injects
the current trace context with the application's propagator (`traceparent`, `tracestate`, baggage);
the job carries it in its payload. `event()` is the queue's hook (`JobQueue.on_event`): `started` opens
the attempt's span, linked to the enqueuing request's span and current while the task runs (its SQL and
cache spans are its children); `succeeded`, `failed`, `cancelled` or `interrupted` (its lease lost, or
its worker shut down) ends it (and leaves its context when still current: a remote worker's outcome
comes in another request of `perfkit serve`). An attempt that ends with no event (a remote worker's
lease that lapsed) is ended, as lost, when the job's next attempt starts or the job is dead. Metrics:
`messaging.client.sent.messages`, `messaging.process.duration`, `perfkit.job.wait.duration`.
"""

from __future__ import annotations

from time import time_ns
from typing import TYPE_CHECKING, Any

from opentelemetry import context, propagate, trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from perfkit.otel.telemetry import Telemetry

if TYPE_CHECKING:
    from collections.abc import Mapping

    from perfkit.jobs.hooks import JobEvent

__all__ = ["JobSpans"]

_ENDS = frozenset({"succeeded", "failed", "cancelled", "interrupted"})
_LAPSED = "lease lost"  # the error of an attempt ended by its job's next attempt (or its death)
_MAX_RUNNING = 10_000  # attempts whose span is open; past it (leases lost without an event) the oldest go


class JobSpans:
    """The carrier and the event hook of one or more job queues."""

    def __init__(self, telemetry: Telemetry) -> None:
        self.telemetry = telemetry
        self._running: dict[str, tuple[int, Any, Any, Any]] = {}  # job id: attempt, span, token, context

    def carry(self) -> Mapping[str, str] | None:
        """The current trace context to put in a job being enqueued (None outside a span, or no SDK)."""
        t = self.telemetry
        tracer = (t.now if t.final else t.current())[0]
        if tracer is None or not trace.get_current_span().get_span_context().is_valid:
            return None
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        return carrier

    def event(self, e: JobEvent) -> None:
        t = self.telemetry
        tracer, meters = t.now if t.final else t.current()
        if tracer is None and meters is None:
            return
        labels = {"messaging.system": "perfkit", "messaging.destination.name": e.queue}
        if e.name == "enqueued":
            if tracer is not None:
                now = time_ns()
                span = tracer.start_span(f"send {e.queue}", None, SpanKind.PRODUCER,
                                         self._attributes(e, "send"), start_time=now)  # fmt: skip
                span.end(now)
            if meters is not None:
                meters.jobs_sent.add(1, labels)
        elif e.name == "started":
            if meters is not None and e.wait is not None:
                meters.job_wait.record(e.wait, labels)
            self._end(e.job_id, e.attempt - 1, _LAPSED)  # an earlier attempt still open: its lease lapsed
            if tracer is not None:
                self._start(tracer, e)
        elif e.name in _ENDS:
            if meters is not None and e.duration is not None:
                outcome = labels if e.name == "succeeded" else {**labels, "error.type": e.name}
                meters.job_duration.record(e.duration, outcome)
            self._end(e.job_id, e.attempt, None if e.name == "succeeded" else (e.error or e.name))
        elif e.name == "dead":
            self._end(e.job_id, e.attempt, _LAPSED)  # (one that failed was ended by `failed`)

    def _end(self, job_id: str, attempt: int, error: str | None) -> None:
        """End the open span of `job_id`'s attempt (or of an earlier one), as an error when `error`."""
        running = self._running.get(job_id)
        if running is None or running[0] > attempt:
            return
        del self._running[job_id]
        _, span, token, attached = running
        if error is not None:
            span.set_attribute("error.type", error.partition(":")[0])
            span.set_status(Status(StatusCode.ERROR, error))
        span.end()
        if context.get_current() is attached:  # the worker's own task; not a remote worker's
            context.detach(token)  # outcome reported in another request (perfkit serve)

    def _start(self, tracer: Any, e: JobEvent) -> None:
        links = []
        if e.headers:
            remote = trace.get_current_span(propagate.extract(dict(e.headers))).get_span_context()
            if remote.is_valid:
                links.append(Link(remote, {"perfkit.link": "enqueued by"}))
        attributes = self._attributes(e, "process")
        span = tracer.start_span(
            f"process {e.queue}", context.Context(), SpanKind.CONSUMER, attributes, links
        )
        attached = trace.set_span_in_context(span)
        token = context.attach(attached)
        if len(self._running) >= _MAX_RUNNING:
            _, stale_span, _, _ = self._running.pop(next(iter(self._running)))
            stale_span.end()
        self._running[e.job_id] = (e.attempt, span, token, attached)

    @staticmethod
    def _attributes(e: JobEvent, op: str) -> dict[str, Any]:
        return {
            "messaging.system": "perfkit",
            "messaging.operation.type": op,
            "messaging.operation.name": op,
            "messaging.destination.name": e.queue,
            "messaging.message.id": e.job_id,
            "perfkit.job.task": e.task,
            "perfkit.job.attempt": e.attempt,
        }
