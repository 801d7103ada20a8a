"""One server span per request, and `http.server.request.duration`, from the web pipeline's tracer seam.

`RequestTracer` is the pipeline's `TracerPart`: `start` runs before the app, in the request's context
(the span is current there, so SQL, cache and job spans are its children and exemplars find it); `end`
runs after the response, the metrics and the slow-request log (whose finding becomes a span event). The
span's name and `http.route` are the route template perfkit's resolver found; the incoming W3C trace
context (`traceparent`) is the parent, through the application's configured propagator. There is no
span per `receive`/`send` call.

Django (`perfkit.django`) resolves the URL after its middleware started the span: `route` names it then;
`failed` records the exception Django turns into a 500 before the middleware sees the response; `detach`
leaves the request's context when the view returns (a streamed response ends later, elsewhere).
"""

from __future__ import annotations

import sys
from typing import Any

from opentelemetry import context, propagate, trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import SpanKind, Status, StatusCode

from perfkit.otel.telemetry import Telemetry
from perfkit.web.routing import UNMATCHED
from perfkit.web.types import Scope

__all__ = ["RequestTracer", "ScopeHeaders"]

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})
_ERROR = Status(StatusCode.ERROR)
# the headers the W3C propagators read (tracecontext, baggage); B3 or Jaeger: configure them too
_PROPAGATED = frozenset({b"traceparent", b"tracestate", b"baggage", b"b3", b"x-b3-traceid", b"uber-trace-id"})


class ScopeHeaders(Getter[Scope]):
    """Reads an ASGI scope's headers for a propagator (names are lower-case bytes in the scope)."""

    def get(self, carrier: Scope, key: str) -> list[str] | None:
        name = key.lower().encode("latin-1")
        found = [v.decode("latin-1") for k, v in carrier.get("headers", ()) if k == name]
        return found or None

    def keys(self, carrier: Scope) -> list[str]:
        return [k.decode("latin-1") for k, _ in carrier.get("headers", ())]


_GETTER = ScopeHeaders()


class RequestTracer:
    """The pipeline's tracer: a server span and a duration per request, nothing without an SDK."""

    def __init__(self, telemetry: Telemetry) -> None:
        self.telemetry = telemetry
        self._labels: dict[tuple[Any, ...], dict[str, Any]] = {}  # metric attributes, made once per set

    def active(self) -> bool:
        """Whether `start` would trace or record anything now (False without an SDK: one check)."""
        t = self.telemetry
        tracer, meters = t.now if t.final else t.current()
        return tracer is not None or meters is not None

    def start(self, scope: Scope, route: str) -> Any:
        t = self.telemetry
        tracer, meters = t.now if t.final else t.current()
        if tracer is None and meters is None:
            return None
        method = scope["method"]
        if method not in _METHODS:
            method = "_OTHER"
        template = route if route and route != UNMATCHED else None
        if tracer is None:
            return (None, None, method, template, meters, None)
        attributes: dict[str, Any] = {
            "http.request.method": method,
            "url.path": scope.get("path", ""),
            "url.scheme": scope.get("scheme", "http"),
            "network.protocol.version": scope.get("http_version", "1.1"),
        }
        if template is not None:
            attributes["http.route"] = template
        client = scope.get("client")
        if client:
            attributes["client.address"] = client[0]
        parent = None  # no propagation header (most requests): the current context, nothing to extract
        for name, _ in scope["headers"]:
            if name in _PROPAGATED:
                parent = propagate.extract(scope, getter=_GETTER)
                break
        span = tracer.start_span(
            f"{method} {template}" if template is not None else method,
            parent, SpanKind.SERVER, attributes,
        )  # fmt: skip
        token = context.attach(trace.set_span_in_context(span, parent))
        return (span, token, method, template, meters, None)

    @staticmethod
    def route(started: Any, template: str | None) -> Any:
        """`started` for the route template found after `start` (None: none): the span's name and
        `http.route`, and the duration's label."""
        span, token, method, _, meters, error = started
        if template is not None and template != UNMATCHED:
            if span is not None:
                span.update_name(f"{method} {template}")
                span.set_attribute("http.route", template)
            return (span, token, method, template, meters, error)
        return started

    @staticmethod
    def failed(started: Any, error: BaseException) -> Any:
        """`started` with the app's exception (recorded on the span, its type the `error.type`)."""
        return (*started[:5], error)

    @staticmethod
    def detach(started: Any) -> Any:
        """Leave the span's context now (in the context `start` ran in); `end` then only ends the span."""
        if started[1] is not None:
            context.detach(started[1])
        return (started[0], None, *started[2:])

    def end(self, started: Any, scope: Scope, status: int, elapsed: float) -> None:
        span, token, method, template, meters, error = started
        if error is None:  # the app's exception, when the pipeline's `finally` runs because of it
            error = sys.exc_info()[1]
        error_type = type(error).__qualname__ if error is not None else str(status) if status >= 500 else None
        try:
            if span is not None:
                span.set_attribute("http.response.status_code", status)
                if error is not None:
                    span.record_exception(error)
                if error_type is not None:
                    span.set_attribute("error.type", error_type)
                    span.set_status(_ERROR)
            if meters is not None:  # recorded while the span is current: the SDK's exemplars point to it
                key = (method, template, status, scope.get("scheme"), scope.get("http_version"), error_type)
                labels = self._labels.get(key)
                if labels is None:
                    labels = self._attributes(key)
                meters.request_duration.record(elapsed, labels)
        finally:
            if span is not None:
                span.end()
                if token is not None:
                    context.detach(token)

    def _attributes(self, key: tuple[Any, ...]) -> dict[str, Any]:
        method, template, status, scheme, version, error_type = key
        labels: dict[str, Any] = {
            "http.request.method": method,
            "http.response.status_code": status,
            "url.scheme": scheme or "http",
            "network.protocol.version": version or "1.1",
        }
        if template is not None:
            labels["http.route"] = template
        if error_type is not None:
            labels["error.type"] = error_type
        if len(self._labels) < 4096:
            self._labels[key] = labels
        return labels
