"""One ASGI hop for the whole stack: the request's bracket, then a plain loop over the send layers.

The bracket is what has to see the request before the app and the response after it: the timing
(request id, `Server-Timing`, the slow-request log), the metrics and the rate limit (its verdict is taken
before the app runs). Each is a policy object with its own decision methods (the protocols below:
`perfkit.web.timing.Timing`, `perfkit.web.request_metrics.RequestMetrics` and
`perfkit.web.ratelimit.middleware.RateLimiter` are the ones perfkit has); this module is the one ASGI
shell they share, and `TimingMiddleware`, `MetricsMiddleware` and `RateLimitMiddleware` are this pipeline
with one part each. The send layers (compression, ETag, Cache-Control; given outer to inner) each give a
synchronous filter per request, run in one loop inside this pipeline's one `send`.

What does not change from one request to the next on a route (its template, its rate-limit plan, its
metric series) is worked out on the route's first request and kept with the resolved route (`RoutePlan`
in `RouteInfo.plans`): a request finds it with the one route lookup it needs anyway.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from functools import partial
from time import perf_counter
from typing import Any, Protocol

from perfkit.metrics import RequestStats, end_request, start_request
from perfkit.web.routing import RouteInfo, RouteResolver
from perfkit.web.types import ASGIApp, Headers, Message, Receive, Scope, Send

__all__ = [
    "Filter",
    "Front",
    "Layer",
    "LimiterPart",
    "MetricsPart",
    "Pipeline",
    "Refusal",
    "RoutePlan",
    "RouteRecorder",
    "TimingPart",
    "TracerPart",
    "Verdict",
    "run_filters",
]

Refusal = tuple[int, bytes, Headers]  # status, detail text, headers
Verdict = tuple[Headers | None, Refusal | None]  # (headers to add, refusal or None)
# A send layer's filter for one request: `f(start, message)` -> the messages to send on in their place.
# The shell holds the response's start until the message after it arrives, so `start` is that start on
# the first call (most responses are one start and one body: one call) and None after it. Given the start,
# a filter returns nothing (the response is dropped) or the start, changed or not, followed by at least
# one message; without it, the messages that replace `message` (no start among them). A start a filter
# returns in place of the one it was given is a dict it made for this response: the shell may change it.
Filter = Callable[[Message | None, Message], Sequence[Message]]
_NO_HEADERS: Headers = []  # (shared, never changed)


def run_filters(filters: Sequence[Filter], start: Message | None, message: Message) -> Sequence[Message]:
    """`start` and `message` through `filters`, innermost first (the order the app's messages meet the
    layers): each filter gets the start (when given) with the message after it, then the rest one by one."""
    out: Sequence[Message] = (message,) if start is None else (start, message)
    for f in filters:
        if not out:
            break
        head = out[0] if start is not None else None  # a filter given the start returns it first
        rest = out[1:] if head is not None else out
        if len(rest) == 1:
            out = f(head, rest[0])
        else:  # (a loop, not a comprehension: a comprehension is one more frame per call)
            more: list[Message] = list(f(head, rest[0]))
            for m in rest[1:]:
                more.extend(f(None, m))
            out = more
    return out


class Front(Protocol):
    """What serves some paths in front of the whole stack (the monitor under /perf), and watches the
    rest (`perfkit.monitor.routes.MonitorMount` is one)."""

    perf: ASGIApp

    def lifespan(self, receive: Receive) -> Receive: ...

    def watch(self, scope: Scope, send: Send) -> Send | None:
        """None for a path the front serves itself (with `perf`), else the `send` to use."""


class Layer(Protocol):
    """A send layer (`perfkit.web.layer.SendLayer`): its decision is a filter per request, or None."""

    def filter(self, scope: Scope) -> Filter | None: ...


class TimingPart(Protocol):
    """The request id, the response's timing headers, the slow-request log (`perfkit.web.timing.Timing`)."""

    slow: float  # seconds from which a request is logged as slow; 0: never

    def request_id(self, scope: Scope) -> bytes: ...

    def stamp(
        self,
        headers: Iterable[tuple[bytes, bytes]],
        request_id: bytes,
        extra: Headers,
        start: float,
        stats: RequestStats | None,
    ) -> Headers: ...

    def log_slow(self, scope: Scope, stats: Any, status: int, elapsed: float, request_id: bytes) -> None: ...


class RouteRecorder(Protocol):
    """The metrics of one method and route: `record` accounts one finished request."""

    def record(
        self,
        scope: Scope,
        status: int,
        size: int,
        elapsed: float,
        stats: RequestStats | None,
        total: float | None,
    ) -> None: ...


class MetricsPart(Protocol):
    """Request metrics (`perfkit.web.request_metrics.RequestMetrics`): `route()` is a route's recorder."""

    active: int  # requests in flight

    def route(self, method: str, template: str) -> RouteRecorder: ...


class LimiterPart(Protocol):
    """The rate limit (`perfkit.web.ratelimit.middleware.RateLimiter`)."""

    def plan_for(self, scope: Scope) -> Any:
        """The request's route's limit plan; None when it is not limited."""

    def decide_now(self, scope: Scope, plan: Any = None) -> Verdict | None:
        """The verdict without I/O, or None when the caller must `await decide(scope)`."""

    async def decide(self, scope: Scope) -> Verdict: ...

    async def refuse(self, send: Send, refusal: Refusal) -> None: ...


class TracerPart(Protocol):
    """Tracing (`perfkit.otel.web.RequestTracer`): `start` before the app runs, in the request's context,
    returns what `end` needs, or None when nothing is traced (no SDK: no span, one check)."""

    def start(self, scope: Scope, route: str) -> Any: ...

    def end(self, started: Any, scope: Scope, status: int, elapsed: float) -> None:
        """After the response (and the metrics, the slow-request log): `elapsed` as the metrics see it."""


class RoutePlan:
    """What the pipeline worked out for one resolved route on its first request."""

    __slots__ = ("limit", "metrics", "template")

    def __init__(self, template: str | None, limit: Any, metrics: RouteRecorder | None) -> None:
        self.template = template  # None: the route has no template; the metrics label is found per request
        self.limit = limit  # the limiter's plan, None when the route is not limited (or no limiter)
        self.metrics = metrics  # the route's recorder when the template is known


class Pipeline:
    def __init__(
        self,
        app: ASGIApp,
        resolver: RouteResolver,
        *,
        timing: TimingPart | None = None,
        metrics: MetricsPart | None = None,
        limiter: LimiterPart | None = None,
        layers: Sequence[Layer] = (),
        front: Front | None = None,
        excluded: Callable[[str], bool] | None = None,
        bare: ASGIApp | None = None,
        tracer: TracerPart | None = None,
    ) -> None:
        """`front`: served before everything else; `excluded(path)`: paths that go to `bare` (the
        app without any layer) instead; `tracer`: a span around each request the stack serves."""
        self.app, self.resolver = app, resolver
        self._resolve = resolver.resolve  # (bound once: one attribute load per request)
        self.front, self.excluded, self.bare = front, excluded, bare
        self._skip = excluded if bare is not None else None
        self.timing, self.metrics, self.limiter = timing, metrics, limiter
        self.tracer = tracer
        self.layers = tuple(reversed(layers))  # the order the app's messages meet them
        # the request's filter: the one layer's decision itself when there is one (no call in between)
        self._filter = self.layers[0].filter if len(self.layers) == 1 else self.filter if layers else None
        self._slow = timing.slow if timing is not None else 0.0

    def plan(self, info: RouteInfo, scope: Scope) -> RoutePlan:
        """The route's plan (made on its first request and kept in `info.plans`)."""
        plan: RoutePlan | None = info.plans.get(self)
        if plan is None:
            limit = self.limiter.plan_for(scope) if self.limiter is not None else None
            metrics = self.metrics
            recorder = None
            if metrics is not None and info.template is not None:
                recorder = metrics.route(scope["method"], info.template)
            plan = info.plans[self] = RoutePlan(info.template, limit, recorder)
        return plan

    def filter(self, scope: Scope) -> Filter | None:
        """The send layers' filters for this request as one filter (None: none of them acts)."""
        filters = None
        for layer in self.layers:  # innermost first
            f = layer.filter(scope)
            if f is not None:
                if filters is None:
                    filters = [f]
                else:
                    filters.append(f)
        if filters is None:
            return None
        return filters[0] if len(filters) == 1 else partial(run_filters, filters)

    # C901: the per-request hot path kept in one frame; each helper call costs ~400 instructions a request
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # noqa: C901
        front = self.front
        if scope["type"] != "http":
            if front is not None and scope["type"] == "lifespan":
                receive = front.lifespan(receive)
            await self.app(scope, receive, send)
            return
        if front is not None:
            watched = front.watch(scope, send)
            if watched is None:
                await front.perf(scope, receive, send)
                return
            send = watched
        if self._skip is not None and self._skip(scope["path"]):
            await self.bare(scope, receive, send)  # type: ignore[misc]  # _skip is set only with bare
            return
        start = perf_counter()
        info = self._resolve(scope)
        plan = info.plans.get(self) or self.plan(info, scope)
        route = plan.template or self.resolver.template(scope)
        timing, metrics = self.timing, self.metrics
        if timing is not None:  # the per-request stats the db and cache hooks fill in
            request_id = timing.request_id(scope)
            stats, token = start_request(route)
        else:
            request_id, stats, token = b"", None, None
        status = 500
        size = 0
        sent = 0.0  # when the last body byte was sent: the request's latency as the client sees it
        held: Message | None = None  # the response start, held for `f` until the message after it
        if metrics is not None:
            metrics.active += 1
        tracer = self.tracer
        traced = tracer.start(scope, route) if tracer is not None else None
        try:
            extra = _NO_HEADERS  # the rate limit's headers
            refusal = None
            limiter = self.limiter
            if limiter is not None and plan.limit is not None:
                verdict = limiter.decide_now(scope, plan.limit)
                if verdict is None:
                    verdict = await limiter.decide(scope)
                headers, refusal = verdict
                if headers and refusal is None:
                    extra = headers
            f = self._filter(scope) if self._filter is not None and refusal is None else None

            # what it only reads is bound as defaults (one tuple, not a cell each); no reference from
            # send_outer to itself: a closure cycle per request would be left to the GC
            async def send_outer(
                message: Message,
                f: Filter | None = f,
                timing: TimingPart | None = timing,
                request_id: bytes = request_id,
                extra: Headers = extra,
                start: float = start,
                stats: RequestStats | None = stats,
                send: Send = send,
            ) -> None:
                nonlocal status, size, sent, held
                if f is None:
                    outs: Sequence[Message] = (message,)
                    app_start: Message | None = message
                elif message["type"] == "http.response.start":
                    held = message
                    return
                else:
                    app_start, held = held, None
                    outs = f(app_start, message)
                for out in outs:
                    kind = out["type"]
                    if kind == "http.response.start":
                        status = out["status"]
                        if timing is not None:
                            headers = timing.stamp(out.get("headers", ()), request_id, extra, start, stats)
                        elif extra:
                            headers = [*out.get("headers", ()), *extra]
                        else:
                            await send(out)
                            continue
                        if out is app_start:  # the app's: copied, never changed
                            out = {**out, "headers": headers}
                        else:  # a start a filter made for this response (the Filter contract): ours to finish
                            out["headers"] = headers
                    elif kind == "http.response.body":
                        body = out.get("body")
                        if body:
                            size += len(body)
                        if not out.get("more_body", False):
                            await send(out)
                            sent = perf_counter()
                            continue
                    await send(out)

            if refusal is not None and limiter is not None:
                await limiter.refuse(send_outer, refusal)
                return
            await self.app(scope, receive, send_outer)
        finally:
            # latency ends at the last body byte; what the app does after it (dependency teardown,
            # background tasks) is `total - elapsed`, counted apart by the metrics
            total = perf_counter() - start
            elapsed = sent - start if sent else total
            if metrics is not None:
                metrics.active -= 1
                (plan.metrics or metrics.route(scope["method"], route)).record(
                    scope, status, size, elapsed, stats, total
                )
            if token is not None:
                end_request(token)
            if self._slow and elapsed >= self._slow and timing is not None and stats is not None:
                timing.log_slow(scope, stats, status, elapsed, request_id)
            if traced is not None:
                tracer.end(traced, scope, status, elapsed)  # type: ignore[union-attr]  # traced: tracer set
