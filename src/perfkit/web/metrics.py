"""Request metrics: count and latency by method, route template and status class; in-flight; sizes.

Route labels are templates (`/items/{id}`), never raw paths, so the number of series stays bounded;
the collector caps it anyway. Per-method-and-route database totals come from the request's `RequestStats`.
Latency is what the client sees: it ends when the last body byte is sent. The app's work after that
(FastAPI's dependency teardown, background tasks) is summed apart, per method and route.
"""

from __future__ import annotations

from bisect import bisect_left
from time import perf_counter

from perfkit.metrics import SIZE_BUCKETS, Collector, RequestStats, current_request, default_collector
from perfkit.web.config import WebConfig
from perfkit.web.routing import UNMATCHED, RouteResolver
from perfkit.web.types import ASGIApp, Message, Receive, Scope, Send

_CLASSES = ("0xx", "1xx", "2xx", "3xx", "4xx", "5xx")


class MetricsMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        config: WebConfig | None = None,
        collector: Collector | None = None,
        resolver: RouteResolver | None = None,
    ) -> None:
        self.app = app
        self.config = config or WebConfig()
        self.resolver = resolver or RouteResolver(app, self.config)
        c = self.collector = collector or default_collector()
        labels = ("method", "route", "status")
        # the request count is this histogram's count (Prometheus `_count`): one write per request, not two
        # written from the event loop only: existing series are updated without a lock (locked=False)
        self.latency = c.histogram(
            "http_request_duration_seconds", labels, "Requests and their duration", locked=False
        )
        self.sizes = c.histogram(
            "http_response_size_bytes", ("method", "route"), "Response body bytes", SIZE_BUCKETS, locked=False
        )
        self.in_flight = c.gauge("http_requests_in_flight", (), "Requests being served")
        self.active = 0
        self.in_flight.track(lambda: self.active)
        # label set -> (latency row, its [min, max], size row): both histograms in one dict lookup per request
        self._rows: dict[tuple[str, str, str], tuple[list[float], list[float], list[float]]] = {}
        self._latency_buckets, self._size_buckets = self.latency.buckets, self.sizes.buckets
        # per method and route: GET and DELETE on one template run different queries
        self.db_queries = c.counter(
            "http_db_queries_total", ("method", "route"), "SQL queries run by requests"
        )
        self.db_time = c.counter("http_db_seconds_total", ("method", "route"), "Seconds in SQL per route")
        self.after_response = c.counter(
            "http_request_after_response_seconds_total", ("method", "route"),
            "Seconds the app ran after the last response byte (dependency teardown, background tasks)",
            locked=False,
        )  # fmt: skip

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = perf_counter()
        status = 500
        size = 0
        sent = 0.0

        async def send_counted(message: Message) -> None:
            nonlocal status, size, sent
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                size += len(message.get("body", b""))
                if not message.get("more_body", False):
                    await send(message)
                    sent = perf_counter()
                    return
            await send(message)

        self.active += 1
        try:
            await self.app(scope, receive, send_counted)
        finally:
            self.active -= 1
            total = perf_counter() - start
            self.record(scope, status, size, sent - start if sent else total, None, total)

    def _remember(self, labels: tuple[str, str, str], size_labels: tuple[str, str]) -> None:
        """Keep the rows of a label set that has its own series (not the overflow one), boundedly."""
        latency, sizes = self.latency.series.get(labels), self.sizes.series.get(size_labels)
        seen = self.latency.extremes.get(labels)
        if latency is not None and seen is not None and sizes is not None and len(self._rows) < 4096:
            self._rows[labels] = (latency, seen, sizes)

    def record(
        self,
        scope: Scope,
        status: int,
        size: int,
        elapsed: float,
        stats: RequestStats | None = None,
        total: float | None = None,
    ) -> None:
        """Account one finished request (also called by the fused timing layer of `instrument()`,
        which passes the request's stats and their route). `elapsed` ends at the last body byte sent;
        `total` at the app's return, when it is later."""
        route = (
            stats.route if stats is not None and stats.route != UNMATCHED else self.resolver.template(scope)
        )
        method = scope["method"]
        labels = (method, route, _CLASSES[min(status // 100, 5)])
        rows = self._rows.get(labels)
        if rows is None:
            self.latency.observe(labels, elapsed)
            self.sizes.observe((method, route), size)
            self._remember(labels, (method, route))
        else:  # the two histogram rows of this label set, updated in place (what observe() does)
            latency, seen, sizes = rows
            latency[bisect_left(self._latency_buckets, elapsed)] += 1
            latency[-1] += elapsed
            if elapsed > seen[1]:
                seen[1] = elapsed
            elif elapsed < seen[0]:
                seen[0] = elapsed
            sizes[bisect_left(self._size_buckets, size)] += 1
            sizes[-1] += size
        if total is not None and total > elapsed:
            self.after_response.inc((method, route), total - elapsed)
        self.resolver.check(scope)
        if stats is None:
            stats = current_request()
        if stats is not None and stats.db_count:
            self.db_queries.inc((method, route), stats.db_count)
            self.db_time.inc((method, route), stats.db_time)
