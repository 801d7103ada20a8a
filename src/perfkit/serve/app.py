"""`ServeApp`: the ASGI application of `perfkit serve`, composing the cache, jobs, loads and ops services.

Per request: match the route (405/404 as problems), check the bearer token's scope and rate limit, read
the body within `max_body`, run the handler; any `Problem` becomes `application/problem+json`. The
lifespan starts the in-process worker (Python tasks and HTTP callbacks) and the lease sweeper of the
remote queues, and closes every backend on shutdown. With `otel` (`--otel`, PERFKIT_OTEL=1), each request
is one OpenTelemetry server span named by its route template that continues an incoming `traceparent`,
and perfkit.otel watches the queue (a job queued carries the trace context; its run links to it), the
namespaces' caches and the monitor's findings.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from perfkit.errors import ConfigurationError
from perfkit.jobs import JobQueue
from perfkit.jobs.lease import LeaseKeeper
from perfkit.jobs.worker import Worker
from perfkit.metrics import default_collector
from perfkit.monitor import Monitor
from perfkit.serve.cache_api import CacheService
from perfkit.serve.config import ServeConfig
from perfkit.serve.http import Request, Response, Router, read_body
from perfkit.serve.job_types import JobTypes, parse_job_type
from perfkit.serve.jobs_api import JobsService
from perfkit.serve.loads_api import LoadsService
from perfkit.serve.ops_api import OpsService, RequestCounts
from perfkit.serve.problems import Problem
from perfkit.serve.purge import PurgeHook
from perfkit.serve.routes import routes
from perfkit.serve.tokens import Authenticator
from perfkit.web.types import Receive, Scope, Send

log = logging.getLogger("perfkit.serve")
_perf = time.perf_counter
_BODYLESS = frozenset({"GET", "HEAD", "DELETE"})


def _load_jobqueue(spec: str) -> JobQueue:
    from perfkit.jobs.cli import load_queue

    found = load_queue(spec)
    if not isinstance(found, JobQueue):
        raise ConfigurationError("tasks", f"{spec!r} is {type(found).__name__}, not a JobQueue")
    return found


class ServeApp:
    def __init__(self, config: ServeConfig | None = None, *, otel: Any = None) -> None:
        """`otel`: a `perfkit.otel.OtelConfig` (its providers), else `config.otel` turns on the defaults."""
        self.config = config = config or ServeConfig.resolve()
        self.otel: Any = None  # perfkit.otel.OpenTelemetry
        if otel is not None or config.otel:
            from perfkit.otel import OpenTelemetry

            self.otel = OpenTelemetry(otel)
        self.tracer = self.otel.requests if self.otel is not None else None
        self.auth = Authenticator(list(config.tokens), config.rate_limit)
        collector = default_collector()  # the Monitor's: its Prometheus text has the purge counts
        self.purge = (
            PurgeHook(config.purge_url, token=config.purge_token, collector=collector)
            if config.purge_url
            else None
        )
        observers = [self.otel.cache.operation] if self.otel is not None else []
        self.cache = CacheService(config, self.purge, observers)
        self.jobs = JobQueue(config.jobs_url)
        self.types = JobTypes(
            self.jobs, secrets=config.callback_secrets, allow_unsigned=config.allow_unsigned_callbacks
        )
        for spec in config.tasks:
            self.types.add_python(_load_jobqueue(spec))
        for text in config.job_types:
            self.types.add(parse_job_type(text))
        self.jobs_api = JobsService(self.jobs, self.types)
        self.loads = LoadsService(
            config.loaders, self.cache.cache, config.callback_secrets, config.allow_unsigned_callbacks
        )
        self.monitor = Monitor(cache=self.cache.cache("default"), jobs=self.jobs, collector=collector)
        self.counts = RequestCounts(self.monitor.collector)
        if self.otel is not None:
            self.otel.watch_jobs(self.jobs)
            self.otel.watch_findings(self.monitor.collector)
        sections = {"cache": self.cache.stats, "loads": self.loads.stats}
        if self.purge is not None:
            sections["purge"] = self.purge.stats
        self.ops = OpsService(self.monitor, self.counts, sections)
        self.routes = routes(
            self.cache, self.jobs_api, self.loads, self.ops, self.openapi, open_health=config.open_health
        )
        self.router = Router(self.routes)
        self._background: list[asyncio.Task[None]] = []
        self._worker: Worker | None = None
        self._worker_task: asyncio.Task[Any] | None = None
        self._openapi: bytes | None = None

    async def openapi(self, request: Request) -> Response:
        if self._openapi is None:
            from perfkit.serve.http import encode
            from perfkit.serve.openapi import document

            self._openapi = encode(document(self.routes))
        return Response(200, self._openapi)

    # -- ASGI -----------------------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self.handle(scope, receive, send)
        elif kind == "lifespan":
            await self.lifespan(receive, send)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        raw = scope.get("raw_path")
        path = raw.split(b"?", 1)[0].decode("latin-1") if raw else scope["path"]
        started = _perf()
        operation, template = "unmatched", "unmatched"
        tracer = self.tracer
        traced = tracer.start(scope, "") if tracer is not None else None
        try:
            route, params = self.router.match(method, path)
            operation, template = route.operation_id, route.template
            if traced is not None:
                traced = tracer.route(traced, template)  # type: ignore[union-attr]  # traced: a tracer
            request = Request(scope, method, path, params)
            if route.scope:
                request.token_name = self.auth.check(_authorization(scope), route.scope).name
            if method not in _BODYLESS:
                request.body = await read_body(scope, receive, self.config.max_body)
            response = await route.handler(request)
        except Problem as problem:
            response = Response(
                problem.status, problem.body(path), b"application/problem+json", problem.headers
            )
        except Exception as exc:
            log.exception("%s %s failed", method, path)
            failure = Problem(500, "internal", "the service failed to answer; see its log")
            response = Response(500, failure.body(path), b"application/problem+json")
            if traced is not None:
                traced = tracer.failed(traced, exc)  # type: ignore[union-attr]  # see above
        try:
            await response.send(send)
        finally:
            if traced is not None:
                tracer.end(traced, scope, response.status, _perf() - started)  # type: ignore[union-attr]
        self.counts.count(operation, method, template, response.status, _perf() - started)

    async def lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.start()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def start(self) -> None:
        """Start the in-process worker (Python and callback types) and the remote queues' lease sweeper."""
        queues = self.types.in_process_queues()
        if queues:
            self._worker = self.jobs.worker(queues, concurrency=self.config.concurrency, grace=5.0)
            self._worker_task = asyncio.create_task(self._worker.run(), name="perfkit-serve-worker")
        remote = self.types.remote_queues()
        if remote:
            lease = self.jobs.lease
            keeper = LeaseKeeper(self.jobs, remote, {}, lease, min(1.0, lease / 3), _log_error)
            self._background.append(asyncio.create_task(keeper.run(), name="perfkit-serve-sweeper"))

    async def close(self) -> None:
        if self._worker is not None and self._worker_task is not None:
            self._worker.stop(hurry=True)  # running jobs are handed back to the queue
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self._worker_task, 10.0)
            self._worker = self._worker_task = None
        tasks, self._background = self._background, []
        for task in tasks:
            task.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.gather(*tasks, return_exceptions=True)
        await self.loads.close()
        await self.types.close()
        if self.purge is not None:
            await self.purge.close()
        await self.monitor.close()
        await self.cache.close()
        await self.jobs.close()


def _authorization(scope: Scope) -> bytes | None:
    for key, value in scope["headers"]:
        if key == b"authorization":
            return bytes(value)
    return None


def _log_error(exc: BaseException) -> None:
    log.warning("lease sweep of the remote queues failed: %s", exc)


def build_app(**settings: Any) -> ServeApp:
    """A `ServeApp` from `ServeConfig.resolve(**settings)` (for `uvicorn --factory` or tests)."""
    return ServeApp(ServeConfig.resolve(**settings))
