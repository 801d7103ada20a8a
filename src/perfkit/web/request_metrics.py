"""Request metrics: count and latency by method, route template and status class; in-flight; sizes.

Route labels are templates (`/items/{id}`), never raw paths, so the number of series stays bounded;
the collector caps it anyway. Per-method-and-route database totals come from the request's `RequestStats`.
Latency is what the client sees: it ends when the last body byte is sent. The app's work after that
(FastAPI's dependency teardown, background tasks) is summed apart, per method and route.
`RequestMetrics` is the policy (what one finished request adds; `RouteMetrics` is one route's share of it,
kept by the pipeline's per-route plan); `MetricsMiddleware` is the pipeline with the metrics alone.
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
    """The request metrics of one app: `route(method, template)` is one route's `RouteMetrics`, whose
    `record()` accounts one finished request (`record()` here finds it by the request)."""

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
        # (method, route) -> its recorder, at most 4096 (past that a recorder per request: the families
        # fold extra label sets into their overflow series)
        self._routes: dict[tuple[str, str], RouteMetrics] = {}

    def route(self, method: str, template: str) -> RouteMetrics:
        """The recorder of one method and route template."""
        key = (method, template)
        recorder = self._routes.get(key)
        if recorder is None:
            recorder = RouteMetrics(self, key)
            if len(self._routes) < 4096:
                self._routes[key] = recorder
        return recorder

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
        self.route(scope["method"], route).record(scope, status, size, elapsed, stats, total)


class RouteMetrics:
    """The metrics of one method and route: its latency and size series per status class, kept once made."""

    __slots__ = ("by_class", "key", "owner")

    def __init__(self, owner: RequestMetrics, key: tuple[str, str]) -> None:
        self.owner, self.key = owner, key  # key: (method, route)
        self.by_class: list[tuple[HistogramSeries, HistogramSeries] | None] = [None] * len(_CLASSES)

    def record(
        self,
        scope: Scope,
        status: int,
        size: int,
        elapsed: float,
        stats: RequestStats | None = None,
        total: float | None = None,
    ) -> None:
        """Account one finished request (`RequestMetrics.record`, with the route found)."""
        owner = self.owner
        index = status // 100
        if index > 5:
            index = 5
        series = self.by_class[index]
        if series is not None:
            series[0].observe(elapsed, series[1], size)
        else:  # the first request of this class: the series are made with its values in them
            self.by_class[index] = (
                owner.latency.series_for((*self.key, _CLASSES[index]), elapsed),
                owner.sizes.series_for(self.key, size),
            )
        if total is not None and total > elapsed:
            owner.after_response.inc(self.key, total - elapsed)
        info = scope.get(SCOPE_KEY)
        if info is None or scope.get("endpoint", info.endpoint) is not info.endpoint:
            owner.resolver.check(scope)  # the router ran another endpoint than resolved: warn once
        if stats is None:
            stats = current_request()
        if stats is not None and stats.db_count:
            owner.db_queries.inc(self.key, stats.db_count)
            owner.db_time.inc(self.key, stats.db_time)


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
