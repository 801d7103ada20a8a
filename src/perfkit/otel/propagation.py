"""The W3C trace context of the current span for an outgoing call (`perfkit.serve.ServeClient`)."""

from __future__ import annotations

from opentelemetry import propagate, trace

__all__ = ["inject_current"]


def inject_current(headers: dict[str, str]) -> None:
    """Add the current span's trace context (`traceparent`, `tracestate`, baggage: the application's
    configured propagator) to `headers`; nothing when no span is current (or no SDK records)."""
    if trace.get_current_span().get_span_context().is_valid:
        propagate.inject(headers)
