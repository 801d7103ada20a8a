"""Timing middleware: `Server-Timing`, `X-Request-ID`, and a log line for slow requests.

`Server-Timing` carries `total` (time to the response headers), `db` (time and number of queries, from
the SQLAlchemy hooks), `cache` (time in cache calls) and `app` (total minus db and cache). A request id
sent by the client is kept when it looks like an id (<= 128 safe characters); otherwise a new one is made.
This layer opens the per-request `RequestStats` that the db and cache hooks fill in.
`timing_allow_origin` adds `Timing-Allow-Origin`, so pages of those origins can read Server-Timing.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
from time import perf_counter
from typing import Any

from perfkit.metrics import Collector, _current, default_collector, start_request
from perfkit.web._asgi import ASGIApp, Headers, Message, Receive, Scope, Send
from perfkit.web.cache_control import CacheControlMiddleware
from perfkit.web.compression import CompressionMiddleware
from perfkit.web.conditional import ConditionalMiddleware, body_etag, has_etag
from perfkit.web.config import WebConfig
from perfkit.web.metrics import MetricsMiddleware
from perfkit.web.ratelimit.middleware import RateLimitMiddleware, refuse
from perfkit.web.routing import RouteResolver

log = logging.getLogger("perfkit.web")
_SAFE_ID = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")  # fullmatch: `$` would let "abc\n" through
REQUEST_ID_KEY = "perfkit.request_id"
_SERVER_TIMING = b'total;dur=%.2f, app;dur=%.2f, db;dur=%.2f;desc="%d queries", cache;dur=%.3f'
_NOTHING_ELSE = b', db;dur=0.00;desc="0 queries", cache;dur=0.000'


# layers whose whole work is a `send` wrapper (`wrap(scope, send)`), foldable into this one
_SEND_ONLY = (CompressionMiddleware, ConditionalMiddleware, CacheControlMiddleware)
_ids = itertools.count(1)
_prefix = [b""]


def _new_prefix() -> None:
    _prefix[0] = os.urandom(6).hex().encode()


def new_request_id() -> bytes:
    """`<12 random hex>-<counter hex>`: unique per process (a forked worker gets a new prefix)."""
    if not _prefix[0]:
        _new_prefix()
        os.register_at_fork(after_in_child=_new_prefix)
    return b"%s-%x" % (_prefix[0], next(_ids))


class TimingMiddleware:
    """Timing alone, or (as `instrument()` builds it) the fused outer layer that also records the
    request metrics (`metrics=`) and applies the rate limit (`limiter=`): one ASGI hop instead of three."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        config: WebConfig | None = None,
        collector: Collector | None = None,
        resolver: RouteResolver | None = None,
        metrics: MetricsMiddleware | None = None,
        limiter: RateLimitMiddleware | None = None,
        fold: bool = False,
    ) -> None:
        self.app = app
        # fold=True (`instrument()`): the layers right inside that only wrap `send` (compression, ETag,
        # Cache-Control) are applied here through their `wrap()`, one coroutine per request instead of four
        self.folded: tuple[Any, ...] = ()
        self.core = app
        if fold:
            layers = []
            while isinstance(self.core, _SEND_ONLY):
                layers.append(self.core)
                self.core = self.core.app
            self.folded = tuple(layers)
        self._tags_first = bool(self.folded) and isinstance(self.folded[0], ConditionalMiddleware)
        self.config = config or WebConfig()
        self.collector = collector or default_collector()
        self.resolver = resolver or RouteResolver(app, self.config)
        self.header_name = self.config.request_id_header.encode("latin-1")
        self.slow = float(self.config.slow_request or 0.0)
        self.server_timing = bool(self.config.server_timing)
        allow = self.config.timing_allow_origin_header
        self.allow_origin = [(b"timing-allow-origin", allow)] if allow and self.server_timing else []
        self.metrics = metrics
        self.limiter = limiter

    # C901: the whole per-request path inlined in one call (issue 15: split into one policy per layer)
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # noqa: C901
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = perf_counter()
        name = self.header_name
        request_id = None
        for key, value in scope["headers"]:
            if key == name:
                request_id = bytes(value) if _SAFE_ID.fullmatch(value) else None
                break
        if request_id is None:
            request_id = new_request_id()
        scope[REQUEST_ID_KEY] = request_id
        stats, token = start_request(self.resolver.template(scope))
        status = 500
        size = 0
        extra: Headers = []
        metrics = self.metrics
        if metrics is not None:
            metrics.active += 1

        server_timing = self.server_timing
        allow_origin = self.allow_origin
        folded = self.folded
        # a plain GET under the ETag layer (compression off): this layer holds the start and adds the ETag
        # itself (what `conditional._tagger` does), one send wrapper less per message
        tag = self._tags_first and folded[0].plain(scope)
        held: Message | None = None
        sent = 0.0  # when the last body byte was sent: the request's latency as the client sees it

        def stamp(message: Message) -> Message:
            """The start message with this layer's headers."""
            nonlocal status
            status = message["status"]
            headers = [*message.get("headers", ()), (name, request_id), *extra]
            if server_timing:
                total = (perf_counter() - start) * 1000
                if not stats.db_count and not stats.db_time and not stats.cache_time:
                    # no SQL, no cache: app = total, one float to format instead of four (same bytes)
                    text = b"%.2f" % total
                    value = b"total;dur=" + text + b", app;dur=" + text + _NOTHING_ELSE
                else:
                    db, cache = stats.db_time * 1000, stats.cache_time * 1000
                    app = total - db - cache
                    value = _SERVER_TIMING % (total, app if app > 0 else 0.0, db, stats.db_count, cache)
                headers.append((b"server-timing", value))
                headers.extend(allow_origin)
            return {**message, "headers": headers}

        # (no reference from send_timed to itself: a closure cycle per request would be left to the GC)
        async def send_timed(message: Message) -> None:
            nonlocal size, tag, held, sent
            if tag:
                if held is None:
                    if message["type"] == "http.response.start":
                        if message["status"] == 200 and not has_etag(message.get("headers", ())):
                            held = message
                            return
                        tag = False
                elif message["type"] == "http.response.body":
                    tag = False
                    if message.get("more_body", False):  # streaming: no ETag
                        await send(stamp(held))
                    else:
                        etag = (b"etag", body_etag(message.get("body", b"")))
                        await send(stamp({**held, "headers": [*held.get("headers", ()), etag]}))
            if message["type"] == "http.response.start":
                message = stamp(message)
            else:
                if metrics is not None:
                    body = message.get("body")
                    if body:
                        size += len(body)
                if message["type"] == "http.response.body" and not message.get("more_body", False):
                    await send(message)
                    sent = perf_counter()
                    return
            await send(message)

        try:
            limiter = self.limiter
            if limiter is not None:
                decided = limiter.admit_now(scope)
                if decided is None:
                    decided = await limiter.admit(scope)
                limit_headers, refusal = decided
                if limit_headers:
                    extra = limit_headers
                if refusal is not None:
                    extra = []
                    tag = False
                    await refuse(send_timed, refusal)
                    return
            inner: Send = send_timed
            for layer in folded[1:] if tag else folded:
                inner = layer.wrap(scope, inner)
            await self.core(scope, receive, inner)
        finally:
            # latency ends at the last body byte; what the app does after it (dependency teardown,
            # background tasks) is `total - elapsed`, counted apart by the metrics
            total = perf_counter() - start
            elapsed = sent - start if sent else total
            if metrics is not None:
                metrics.active -= 1
                metrics.record(scope, status, size, elapsed, stats, total)
            _current.reset(token)
            if self.slow and elapsed >= self.slow:
                self._slow(scope, stats, status, elapsed, request_id)

    def _slow(self, scope: Scope, stats: Any, status: int, elapsed: float, request_id: bytes) -> None:
        finding = {
            "method": scope.get("method"),
            "route": self.resolver.template(scope),
            "status": status,
            "duration_ms": round(elapsed * 1000, 2),
            "db_queries": stats.db_count,
            "db_ms": round(stats.db_time * 1000, 2),
            "cache_ms": round(stats.cache_time * 1000, 2),
            "request_id": request_id.decode("latin-1"),
        }
        self.collector.record("slow_request", finding)
        log.warning(
            "slow request %s",
            " ".join(f"{k}={v}" for k, v in finding.items()),
            extra={"perfkit": finding},
        )
