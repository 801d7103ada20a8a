"""Timing middleware: `Server-Timing`, `X-Request-ID`, and a log line for slow requests.

`Server-Timing` carries `total` (time to the response headers), `db` (time and number of queries, from
the SQLAlchemy hooks), `cache` (time in cache calls) and `app` (total minus db and cache). A request id
sent by the client is kept when it looks like an id (<= 128 safe characters); otherwise a new one is made.
This layer opens the per-request `RequestStats` that the db and cache hooks fill in.
"""

from __future__ import annotations

import logging
import os
import re
from time import perf_counter
from typing import Any

from perfkit.metrics import Collector, _current, default_collector, start_request
from perfkit.web._asgi import ASGIApp, Message, Receive, Scope, Send
from perfkit.web.config import WebConfig
from perfkit.web.routing import RouteResolver

log = logging.getLogger("perfkit.web")
_SAFE_ID = re.compile(rb"^[A-Za-z0-9._:\-]{1,128}$")
REQUEST_ID_KEY = "perfkit.request_id"


def new_request_id() -> bytes:
    return os.urandom(8).hex().encode()


class TimingMiddleware:
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
        self.collector = collector or default_collector()
        self.resolver = resolver or RouteResolver(app, self.config)
        self.header_name = self.config.request_id_header.encode("latin-1")
        self.slow = float(self.config.slow_request or 0.0)
        self.server_timing = bool(self.config.server_timing)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = perf_counter()
        name = self.header_name
        request_id = None
        for key, value in scope["headers"]:
            if key == name:
                request_id = bytes(value) if _SAFE_ID.match(value) else None
                break
        if request_id is None:
            request_id = new_request_id()
        scope[REQUEST_ID_KEY] = request_id
        stats, token = start_request(self.resolver.template(scope))
        status = 500

        async def send_timed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", ()))
                headers.append((name, request_id))
                if self.server_timing:
                    total = (perf_counter() - start) * 1000
                    db, cache = stats.db_time * 1000, stats.cache_time * 1000
                    value = (
                        f"total;dur={total:.2f}, app;dur={max(total - db - cache, 0.0):.2f}, "
                        f'db;dur={db:.2f};desc="{stats.db_count} queries", cache;dur={cache:.2f}'
                    )
                    headers.append((b"server-timing", value.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_timed)
        finally:
            _current.reset(token)
            elapsed = perf_counter() - start
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
