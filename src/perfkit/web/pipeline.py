"""One ASGI hop for the whole stack: the request's bracket, then a plain loop over the send layers.

The bracket is what has to see the request before the app and the response after it: the timing
(`Timing`: request id, `Server-Timing`, the slow-request log), the metrics (`RequestMetrics`) and the
rate limit (`RateLimiter`: its verdict is taken before the app runs). Each is a policy object with its
own decision methods; this module is the one ASGI shell they share, and `TimingMiddleware`,
`MetricsMiddleware` and `RateLimitMiddleware` are this pipeline with one part each. The send layers
(compression, ETag, Cache-Control; given outer to inner) each give a synchronous filter per request,
run in one loop inside this pipeline's one `send`: no coroutine per layer per message.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from time import perf_counter
from typing import TYPE_CHECKING, Protocol

from perfkit.metrics import end_request, start_request
from perfkit.web.layer import Filter, run_filters
from perfkit.web.routing import RouteResolver
from perfkit.web.types import ASGIApp, Headers, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from perfkit.web.layer import SendLayer
    from perfkit.web.metrics import RequestMetrics
    from perfkit.web.ratelimit.middleware import RateLimiter
    from perfkit.web.timing import Timing

__all__ = ["Front", "Pipeline"]


class Front(Protocol):
    """What serves some paths in front of the whole stack (the monitor under /perf), and watches the
    rest (`perfkit.monitor.routes.MonitorMount` is one)."""

    perf: ASGIApp

    def lifespan(self, receive: Receive) -> Receive: ...

    def watch(self, scope: Scope, send: Send) -> Send | None:
        """None for a path the front serves itself (with `perf`), else the `send` to use."""


class Pipeline:
    def __init__(
        self,
        app: ASGIApp,
        resolver: RouteResolver,
        *,
        timing: Timing | None = None,
        metrics: RequestMetrics | None = None,
        limiter: RateLimiter | None = None,
        layers: Sequence[SendLayer] = (),
        front: Front | None = None,
        excluded: Callable[[str], bool] | None = None,
        bare: ASGIApp | None = None,
    ) -> None:
        """`front`: served before everything else; `excluded(path)`: paths that go to `bare` (the
        app without any layer) instead."""
        self.app, self.resolver = app, resolver
        self.front, self.excluded, self.bare = front, excluded, bare
        self.timing, self.metrics, self.limiter = timing, metrics, limiter
        self.layers = tuple(reversed(layers))  # the order the app's messages meet them

    # C901: the per-request hot path kept in one frame; each helper call costs ~1k instructions a request
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
        if self.excluded is not None and self.bare is not None and self.excluded(scope["path"]):
            await self.bare(scope, receive, send)
            return
        start = perf_counter()
        timing, metrics = self.timing, self.metrics
        stats = token = None
        request_id = b""
        if timing is not None:  # the per-request stats the db and cache hooks fill in
            request_id = timing.request_id(scope)
            template = self.resolver.resolve(scope).template  # resolved once: kept in the scope
            stats, token = start_request(template if template is not None else self.resolver.template(scope))
        status = 500
        size = 0
        sent = 0.0  # when the last body byte was sent: the request's latency as the client sees it
        extra: Headers = []  # the rate limit's headers

        filters: list[Filter] = []  # the send layers' for this request, innermost first

        # (no reference from send_outer to itself: a closure cycle per request would be left to the GC)
        async def send_outer(message: Message) -> None:
            nonlocal status, size, sent
            if not filters:
                outs: Sequence[Message] = (message,)
            elif len(filters) == 1:
                outs = filters[0](message)
            else:
                outs = run_filters(filters, message)
            for out in outs:
                if out["type"] == "http.response.start":
                    status = out["status"]
                    if timing is not None:
                        headers = timing.stamp(out.get("headers", ()), request_id, extra, start, stats)
                        out = {**out, "headers": headers}
                    elif extra:
                        out = {**out, "headers": [*out.get("headers", ()), *extra]}
                    await send(out)
                    continue
                body = out.get("body")
                if body:
                    size += len(body)
                await send(out)
                if out["type"] == "http.response.body" and not out.get("more_body", False):
                    sent = perf_counter()

        if metrics is not None:
            metrics.active += 1
        try:
            limiter = self.limiter
            if limiter is not None:
                verdict = limiter.decide_now(scope)
                if verdict is None:
                    verdict = await limiter.decide(scope)
                headers, refusal = verdict
                if refusal is not None:
                    await limiter.refuse(send_outer, refusal)
                    return
                if headers:
                    extra = headers
            for layer in self.layers:  # innermost first
                f = layer.filter(scope)
                if f is not None:
                    filters.append(f)
            await self.app(scope, receive, send_outer)
        finally:
            # latency ends at the last body byte; what the app does after it (dependency teardown,
            # background tasks) is `total - elapsed`, counted apart by the metrics
            total = perf_counter() - start
            elapsed = sent - start if sent else total
            if metrics is not None:
                metrics.active -= 1
                metrics.record(scope, status, size, elapsed, stats, total)
            if token is not None:
                end_request(token)
            if timing is not None and timing.slow and elapsed >= timing.slow and stats is not None:
                timing.log_slow(scope, stats, status, elapsed, request_id)
