"""Request metrics: count and latency by method, route template and status class; in-flight; sizes.

Route labels are templates (`/items/{id}`), never raw paths, so the number of series stays bounded;
the collector caps it anyway. Per-method-and-route database totals come from the request's `RequestStats`.
Latency is what the client sees: it ends when the last body byte is sent. The app's work after that
(FastAPI's dependency teardown, background tasks) is summed apart, per method and route.
`RequestMetrics` is the policy (what one finished request adds); `MetricsMiddleware` is the pipeline
with the metrics alone.
"""

from __future__ import annotations

from perfkit.metrics import (
    SIZE_BUCKETS,
    Collector,
    HistogramSeries,
    RequestStats,
    current_request,
    default_collector,
)
from perfkit.web.config import WebConfig
from perfkit.web.pipeline import Pipeline
from perfkit.web.routing import SCOPE_KEY, UNMATCHED, RouteResolver
from perfkit.web.types import ASGIApp, Scope

_CLASSES = ("0xx", "1xx", "2xx", "3xx", "4xx", "5xx")


class RequestMetrics:
    """The request metrics of one app: `record()` accounts one finished request."""

    def __init__(self, collector: Collector, resolver: RouteResolver) -> None:
        c = self.collector = collector
        self.resolver = resolver
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
        # label set -> its latency and size series: both histograms in one dict lookup per request
        self._series: dict[tuple[str, str, str], tuple[HistogramSeries, HistogramSeries]] = {}
        # per method and route: GET and DELETE on one template run different queries
        self.db_queries = c.counter(
            "http_db_queries_total", ("method", "route"), "SQL queries run by requests"
        )
        self.db_time = c.counter("http_db_seconds_total", ("method", "route"), "Seconds in SQL per route")
        self.after_response = c.counter(
            "http_request_after_response_seconds_total",
            ("method", "route"),
            "Seconds the app ran after the last response byte (dependency teardown, background tasks)",
            locked=False,
        )

    def record(
        self,
        scope: Scope,
        status: int,
        size: int,
        elapsed: float,
        stats: RequestStats | None = None,
        total: float | None = None,
    ) -> None:
        """Account one finished request. `elapsed` ends at the last body byte sent; `total` at the
        app's return, when it is later. `stats`: the request's, when the caller opened them."""
        route = (
            stats.route if stats is not None and stats.route != UNMATCHED else self.resolver.template(scope)
        )
        method = scope["method"]
        labels = (method, route, _CLASSES[min(status // 100, 5)])
        series = self._series.get(labels)
        if series is not None:
            series[0].observe(elapsed, series[1], size)
        elif len(self._series) < 4096:
            self._series[labels] = (
                self.latency.series_for(labels, elapsed),
                self.sizes.series_for((method, route), size),
            )
        else:
            self.latency.observe(labels, elapsed)
            self.sizes.observe((method, route), size)
        if total is not None and total > elapsed:
            self.after_response.inc((method, route), total - elapsed)
        info = scope.get(SCOPE_KEY)
        if info is None or scope.get("endpoint", info.endpoint) is not info.endpoint:
            self.resolver.check(scope)  # the router ran another endpoint than resolved: warn once
        if stats is None:
            stats = current_request()
        if stats is not None and stats.db_count:
            self.db_queries.inc((method, route), stats.db_count)
            self.db_time.inc((method, route), stats.db_time)


class MetricsMiddleware(Pipeline):
    """Request metrics alone (`instrument()` puts the same `RequestMetrics` in its one pipeline)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        config: WebConfig | None = None,
        collector: Collector | None = None,
        resolver: RouteResolver | None = None,
    ) -> None:
        self.config = config or WebConfig()
        resolver = resolver or RouteResolver(app, self.config)
        super().__init__(app, resolver, metrics=RequestMetrics(collector or default_collector(), resolver))
