"""Metrics, health and reports: the service's own counters next to perfkit's Monitor.

`GET /v1/metrics` answers JSON (per namespace cache statistics, job queue depth, requests per route,
loader statistics); `?format=prometheus` is the Monitor's Prometheus text. `GET /v1/health` runs the
Monitor's readiness checks (cache, job queue, host) and answers 503 when one fails. `GET /v1/reports`
is the Monitor's performance report over `?window=` seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from perfkit.metrics import Collector
from perfkit.monitor import Monitor
from perfkit.serve import schemas as s
from perfkit.serve.http import Request, Response, json_response
from perfkit.serve.problems import Problem

_CLASSES = ("0xx", "1xx", "2xx", "3xx", "4xx", "5xx")


class RequestCounts:
    """Requests and errors per operation, and the time since start: the service's own metrics. Each
    request's duration also goes to the collector's `http_request_duration_seconds` (method, route
    template, status class), the series the web layer writes, so the Monitor's report covers the service."""

    def __init__(self, collector: Collector) -> None:
        self.started = time.time()
        self.counts: dict[str, list[int]] = {}  # operation -> [requests, 4xx, 5xx]
        self.latency = collector.histogram(
            "http_request_duration_seconds", ("method", "route", "status"), "Requests and their duration",
            locked=False,
        )  # fmt: skip

    def count(self, operation: str, method: str, route: str, status: int, seconds: float) -> None:
        row = self.counts.get(operation)
        if row is None:
            row = self.counts[operation] = [0, 0, 0]
        row[0] += 1
        if status >= 500:
            row[2] += 1
        elif status >= 400:
            row[1] += 1
        self.latency.observe((method, route, _CLASSES[min(status // 100, 5)]), seconds)

    def as_dict(self) -> dict[str, Any]:
        return {
            op: {"requests": r, "client_errors": c, "server_errors": e}
            for op, (r, c, e) in self.counts.items()
        }


class OpsService:
    def __init__(
        self, monitor: Monitor, counts: RequestCounts, sections: dict[str, Callable[[], Any]]
    ) -> None:
        self.monitor, self.counts, self.sections = monitor, counts, sections

    async def metrics(self, request: Request) -> Response:
        fmt = request.arg("format", "json")
        if fmt == "prometheus":
            return Response(200, await self.monitor.prometheus(), b"text/plain; version=0.0.4; charset=utf-8")
        if fmt != "json":
            raise Problem(422, "validation", f"format: {fmt!r}: use json or prometheus", field="format")
        depth: dict[str, dict[str, int]] = {}
        if self.monitor.jobs is not None:
            try:
                for (queue, priority), n in (await self.monitor.jobs.depth()).items():
                    depth.setdefault(queue, {})[str(priority)] = n
            except Exception as exc:  # the queue's backend is down: say so, keep the other metrics
                depth = {"error": str(exc)}  # type: ignore[dict-item]
        out: dict[str, Any] = {
            "uptime_s": round(time.time() - self.counts.started, 3),
            "requests": self.counts.as_dict(),
            "jobs": {"depth": depth},
        }
        for name, section in self.sections.items():
            out[name] = section()
        return json_response(out)

    async def health(self, request: Request) -> Response:
        ok, checks = await self.monitor.readiness()
        return json_response(s.Health(ok, checks), 200 if ok else 503)

    async def reports(self, request: Request) -> Response:
        raw = request.arg("window")
        window = None
        if raw is not None:
            try:
                window = float(raw)
            except ValueError:
                window = -1.0
            if not 0 < window <= 86_400 * 7:
                raise Problem(
                    422, "validation", f"window: {raw!r} is not seconds in (0, 604800]", field="window"
                )
        return json_response(await self.monitor.report(window))
