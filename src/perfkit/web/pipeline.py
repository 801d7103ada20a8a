"""One ASGI hop for the whole stack: the request's bracket, then a plain loop over the send layers.

The bracket is what has to see the request before the app and the response after it: the timing
(`Timing`: request id, `Server-Timing`, the slow-request log), the metrics (`RequestMetrics`) and the
rate limit (`RateLimiter`: its verdict is taken before the app runs). Each is a policy object with its
own decision methods; this module is the one ASGI shell they share, and `TimingMiddleware`,
`MetricsMiddleware` and `RateLimitMiddleware` are this pipeline with one part each. The send layers
(compression, ETag, Cache-Control) only wrap `send`, outer to inner, in the order given.
"""

from __future__ import annotations

from collections.abc import Sequence
from time import perf_counter
from typing import TYPE_CHECKING

from perfkit.metrics import end_request, start_request
from perfkit.web.routing import RouteResolver
from perfkit.web.types import ASGIApp, Headers, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from perfkit.web.layer import SendLayer
    from perfkit.web.metrics import RequestMetrics
    from perfkit.web.ratelimit.middleware import RateLimiter
    from perfkit.web.timing import Timing

__all__ = ["Pipeline"]


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
    ) -> None:
        self.app, self.resolver = app, resolver
        self.timing, self.metrics, self.limiter = timing, metrics, limiter
        self.layers = tuple(layers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = perf_counter()
        timing, metrics = self.timing, self.metrics
        stats = token = None
        request_id = b""
        if timing is not None:  # the per-request stats the db and cache hooks fill in
            request_id = timing.request_id(scope)
            stats, token = start_request(self.resolver.template(scope))
        status = 500
        size = 0
        sent = 0.0  # when the last body byte was sent: the request's latency as the client sees it
        extra: Headers = []  # the rate limit's headers

        # (no reference from send_outer to itself: a closure cycle per request would be left to the GC)
        async def send_outer(message: Message) -> None:
            nonlocal status, size, sent
            if message["type"] == "http.response.start":
                status = message["status"]
                if timing is not None:
                    headers = timing.stamp(message.get("headers", ()), request_id, extra, start, stats)
                elif extra:
                    headers = [*message.get("headers", ()), *extra]
                else:
                    await send(message)
                    return
                await send({**message, "headers": headers})
                return
            body = message.get("body")
            if body:
                size += len(body)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                await send(message)
                sent = perf_counter()
                return
            await send(message)

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
            inner: Send = send_outer
            for layer in self.layers:
                inner = layer.wrap(scope, inner)
            await self.app(scope, receive, inner)
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
            if timing is not None and stats is not None:
                timing.finish(scope, stats, status, elapsed, request_id)
