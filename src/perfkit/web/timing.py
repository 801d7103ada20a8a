"""Timing middleware: `Server-Timing`, `X-Request-ID`, and a log line for slow requests.

`Server-Timing` carries `total` (time to the response headers), `db` (time and number of queries, from
the SQLAlchemy hooks), `cache` (time in cache calls) and `app` (total minus db and cache). A request id
sent by the client is kept when it looks like an id (<= 128 safe characters); otherwise a new one is made.
The pipeline opens the per-request `RequestStats` (`start_request`) that the db and cache hooks fill in.
`Timing` is the policy (the request id, the header values, the slow-request log); `TimingMiddleware` is
the pipeline with the timing alone.
`timing_allow_origin` adds `Timing-Allow-Origin`, so pages of those origins can read Server-Timing.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
from collections.abc import Iterable
from time import perf_counter
from typing import Any

from perfkit.metrics import Collector, RequestStats, default_collector
from perfkit.web.config import WebConfig
from perfkit.web.pipeline import Pipeline
from perfkit.web.routing import RouteResolver
from perfkit.web.types import ASGIApp, Headers, Scope

log = logging.getLogger("perfkit.web")
_SAFE_ID = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")  # fullmatch: `$` would let "abc\n" through
REQUEST_ID_KEY = "perfkit.request_id"
_SERVER_TIMING = b'total;dur=%.2f, app;dur=%.2f, db;dur=%.2f;desc="%d queries", cache;dur=%.3f'
_NOTHING_ELSE = b', db;dur=0.00;desc="0 queries", cache;dur=0.000'
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


class Timing:
    """The timing policy: what id a request gets, the headers its response gets, whether it was slow."""

    def __init__(self, config: WebConfig, collector: Collector, resolver: RouteResolver) -> None:
        self.config, self.collector, self.resolver = config, collector, resolver
        self.header_name = config.request_id_header.encode("latin-1")
        self.slow = float(config.slow_request or 0.0)
        self.server_timing = bool(config.server_timing)
        allow = config.timing_allow_origin_header
        self.allow_origin = [(b"timing-allow-origin", allow)] if allow and self.server_timing else []

    def request_id(self, scope: Scope) -> bytes:
        """The client's id when it looks like one (<= 128 safe characters), else a new one; kept in
        the scope under `REQUEST_ID_KEY`."""
        name = self.header_name
        request_id = None
        for key, value in scope["headers"]:
            if key == name:
                request_id = bytes(value) if _SAFE_ID.fullmatch(value) else None
                break
        if request_id is None:  # (the formatting of `new_request_id` inline once the prefix exists)
            request_id = b"%s-%x" % (_prefix[0], next(_ids)) if _prefix[0] else new_request_id()
        scope[REQUEST_ID_KEY] = request_id
        return request_id

    def stamp(
        self,
        headers: Iterable[tuple[bytes, bytes]],
        request_id: bytes,
        extra: Headers,
        start: float,
        stats: RequestStats | None,
    ) -> Headers:
        """The response headers with the request id, `extra` and Server-Timing (time to now)."""
        out = [*headers, (self.header_name, request_id), *extra]
        if self.server_timing and stats is not None:
            total = (perf_counter() - start) * 1000
            if not stats.db_count and not stats.db_time and not stats.cache_time:
                # no SQL, no cache: app = total, one float to format instead of four (same bytes)
                text = b"%.2f" % total
                value = b"total;dur=" + text + b", app;dur=" + text + _NOTHING_ELSE
            else:
                db, cache = stats.db_time * 1000, stats.cache_time * 1000
                app = total - db - cache
                value = _SERVER_TIMING % (total, app if app > 0 else 0.0, db, stats.db_count, cache)
            out.append((b"server-timing", value))
            if self.allow_origin:
                out.extend(self.allow_origin)
        return out

    def log_slow(self, scope: Scope, stats: Any, status: int, elapsed: float, request_id: bytes) -> None:
        """Log (and record) a request that took `slow_request` seconds or more (the pipeline checks)."""
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


class TimingMiddleware(Pipeline):
    """`Server-Timing`, `X-Request-ID` and the slow-request log, alone (`instrument()` puts the same
    `Timing` in its one pipeline with the metrics and the rate limit)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        config: WebConfig | None = None,
        collector: Collector | None = None,
        resolver: RouteResolver | None = None,
    ) -> None:
        config = config or WebConfig()
        resolver = resolver or RouteResolver(app, config)
        timing = Timing(config, collector or default_collector(), resolver)
        super().__init__(app, resolver, timing=timing)
