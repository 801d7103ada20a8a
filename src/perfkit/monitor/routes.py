"""The monitoring sub-app (pure ASGI) and the outer layer that mounts it under the prefix.

`MonitorMount` wraps the application's whole stack: requests under the prefix go to the monitor (never
through the app's middleware, so scrapes do not count as traffic); the lifespan starts and stops the
monitor's background tasks; and other responses are checked for one measurement the inner layers cannot
see: bodies over the size budget sent uncompressed to clients that accept compression.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from perfkit.config import parse_duration
from perfkit.errors import PerfkitError
from perfkit.monitor import auth, live
from perfkit.monitor.dashboard import Assets
from perfkit.monitor.http import error, respond, respond_json
from perfkit.web.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from perfkit.monitor.monitor import Monitor

_COMPRESSIBLE = (b"text/", b"application/json", b"application/javascript", b"application/xml", b"image/svg")
_ENCODINGS = (b"gzip", b"br", b"zstd", b"deflate")


def _query(scope: Scope) -> dict[str, str]:
    raw = scope.get("query_string", b"").decode("latin-1")
    return {k: v[-1] for k, v in parse_qs(raw).items()}


class MonitorApp:
    def __init__(
        self,
        monitor: Monitor,
        prefix: str | None = None,
        *,
        app: Any = None,
        routes: Callable[[str], str] | None = None,
    ) -> None:
        """`prefix`: where the app is mounted when not at `monitor.config.prefix` (a Django project's
        `include()` path): the paths it strips and the dashboard's links. `app`: the application whose
        routes name the pages of RUM beacons, or `routes`: a page URL -> its route template ("other"
        for none); with neither, every page is "other"."""
        self.monitor = monitor
        self.config = monitor.config
        self.prefix = str(self.config.prefix) if prefix is None else prefix
        self.assets = Assets(self.prefix)
        self.app, self.routes = app, routes
        self._rum: Any = None

    @property
    def rum(self) -> Any:
        """The `RumEndpoint` (made at the first beacon)."""
        if self._rum is None:
            from perfkit.monitor.rum.endpoint import RumEndpoint
            from perfkit.monitor.rum.pages import PageRoutes

            routes = self.routes or PageRoutes(self.app)
            self._rum = RumEndpoint(self.config.rum, self.monitor.rum, routes)
        return self._rum

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"][len(self.prefix) :] or "/"
        method = scope["method"]
        if path == "/health":
            await respond_json(send, 200, {"status": "ok", "t": time.time()})
            return
        if method in ("GET", "HEAD") and (path in ("/", "/rum.js") or path.startswith("/assets/")):
            await self.assets.serve(path, scope, send)  # the static shell and snippet: no data, see docs
            return
        if path == "/rum" and self.config.rum.enabled:  # open by design: browsers post; origin-checked
            await self.rum(scope, receive, send)
            return
        action = method == "POST"
        if not auth.allowed(scope, self.config.token, open_reads=bool(self.config.open), action=action):
            await error(send, 401, "a valid 'Authorization: Bearer <token>' is required")
            return
        try:
            await self._route(method, path, scope, receive, send)
        except PerfkitError as exc:
            await error(send, 400, str(exc))

    async def _route(self, method: str, path: str, scope: Scope, receive: Receive, send: Send) -> None:
        m, q = self.monitor, _query(scope)
        if method == "GET" and path == "/health/ready":
            ready, body = await m.readiness()
            await respond_json(send, 200 if ready else 503, body)
        elif method == "GET" and path == "/metrics":
            from perfkit.monitor.prometheus import CONTENT_TYPE

            await respond(send, 200, await m.prometheus(), CONTENT_TYPE, [(b"cache-control", b"no-store")])
        elif method == "GET" and path == "/report":
            window = parse_duration("window", q["window"]) if "window" in q else None
            await respond_json(send, 200, await m.report(window))
        elif method == "GET" and path == "/live":
            limit = min(int(q["max"]), 3600) if q.get("max", "").isdigit() else None
            await live.stream(m, receive, send, limit)
        elif method == "GET" and path == "/api/history":
            from perfkit.monitor import history

            since = time.time() - parse_duration("since", q.get("since", "24h"))
            points = await history.series(m.store, since) if m.running else []
            await respond_json(send, 200, {"points": points})
        elif method == "GET" and path == "/api/regressions":
            from perfkit.monitor import history

            await respond_json(
                send, 200, await history.regressions(m.store, parse_duration("span", q.get("span", "1h")))
            )
        elif method == "POST" and path == "/api/deploy":
            from perfkit.monitor import history

            await respond_json(
                send, 200, await history.mark_deploy(m.store, q.get("version", "unnamed")[:100])
            )
        elif method == "GET" and path == "/api/findings":
            await self._findings(q, send)
        elif method == "GET" and path == "/api/top":
            from perfkit.monitor.top import top

            await respond_json(send, 200, await top(m))
        elif method == "GET" and path == "/api/alerts":
            await respond_json(
                send,
                200,
                {
                    "active": m.alerts.active(),
                    "recent": m.alerts.sent[-20:],
                    "rules": [r.name for r in m.alerts.rules],
                },
            )
        elif path.startswith("/api/jobs"):
            await self._jobs(method, path, q, send)
        elif method == "POST" and path == "/api/cache/clear":
            if m.cache is None:
                await error(send, 404, m.no_cache)
                return
            await respond_json(send, 200, {"cleared": await m.cache.clear(), "namespace": m.cache.namespace})
        else:
            await error(send, 404, f"no monitoring endpoint {method} {path}")

    async def _findings(self, q: dict[str, str], send: Send) -> None:
        from perfkit.monitor import findings
        from perfkit.monitor.report import clean

        kind = q.get("kind", "slow_query")
        offset = max(0, int(q.get("offset", "0") or 0))
        limit = min(500, max(1, int(q.get("limit", "100") or 100)))
        since = parse_duration("since", q.get("since", "24h"))
        group = q.get("group", "0") in ("1", "true", "yes")
        if group and kind not in findings.KINDS:
            raise PerfkitError(f"group: no grouping for kind {kind!r} (one of {', '.join(findings.KINDS)})")
        found = await self.monitor.findings(since)
        items = [clean(f, self.config.show_parameters) for f in found.get(kind, [])]
        if group:  # one row per statement shape / relationship / index / route, most time first
            window, _covered, _procs = await self.monitor.window(since)
            kinds = {kind: items, "query_plan": found.get("query_plan", [])}
            items = findings.grouped(window, kinds)[findings.KINDS[kind]]
        else:
            items.reverse()  # newest first
        page = items[offset : offset + limit]
        body = {"kind": kind, "grouped": group, "total": len(items), "offset": offset, "items": page}
        await respond_json(send, 200, body)

    async def _jobs(self, method: str, path: str, q: dict[str, str], send: Send) -> None:
        jobs = self.monitor.jobs
        if jobs is None:
            await error(send, 404, "no job queue was given to instrument()")
            return
        if method == "GET" and path == "/api/jobs":
            limit = min(1000, max(1, int(q.get("limit", "50") or 50)))
            page, cursor = await jobs.list(
                q.get("status") or None, q.get("queue") or None, limit, q.get("cursor")
            )
            items = [
                {
                    "id": j.id,
                    "type": j.type,
                    "queue": j.queue,
                    "priority": j.priority.name.lower(),
                    "status": str(j.status),
                    "progress": j.progress,
                    "progress_message": j.progress_message,
                    "attempts": j.attempts,
                    "max_attempts": j.max_attempts,
                    "error": j.error,
                    "queued_at": j.queued_at,
                    "started_at": j.started_at,
                    "completed_at": j.completed_at,
                }
                for j in page
            ]
            await respond_json(send, 200, {"items": items, "cursor": cursor})
            return
        job_id, _, verb = path[len("/api/jobs/") :].rpartition("/")
        if method != "POST" or verb not in ("cancel", "retry") or not job_id:
            await error(send, 404, f"no monitoring endpoint {method} {path}")
        elif verb == "cancel":
            info = await jobs.cancel(job_id)
            if info is None:
                await error(send, 404, f"no job {job_id!r}")
            else:
                await respond_json(
                    send,
                    200,
                    {"id": info.id, "status": str(info.status), "cancel_requested": info.cancel_requested},
                )
        else:
            retried = await jobs.retry(job_id) is not None
            await respond_json(send, 200 if retried else 409, {"id": job_id, "retried": retried})


class MonitorMount:
    """The outermost layer `instrument()` adds: the monitor under its prefix, lifespan, compression check."""

    def __init__(self, app: ASGIApp, monitor: Monitor) -> None:
        self.app, self.monitor = app, monitor
        self.perf = MonitorApp(monitor, app=app)
        self.prefix = str(monitor.config.prefix)
        self._below = self.prefix + "/"
        self.threshold = monitor.config.budgets.uncompressed_bytes

    def __getattr__(self, name: str) -> Any:  # `.perfkit` and friends of the wrapped stack stay reachable
        if name == "app":  # not set yet (copy, pickle): no recursion
            raise AttributeError(name)
        return getattr(self.app, name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self.app(scope, self.lifespan(receive), send)
            return
        if kind != "http":
            await self.app(scope, receive, send)
            return
        watched = self.watch(scope, send)
        if watched is None:
            await self.perf(scope, receive, send)
            return
        await self.app(scope, receive, watched)

    def lifespan(self, receive: Receive) -> Receive:
        """`receive` for the app's lifespan scope: the monitor starts and stops with the app."""
        return self._lifespan(receive)

    def watch(self, scope: Scope, send: Send) -> Send | None:
        """None for a path under the monitor's prefix (served by `perf`, past every other layer); else
        `send` that counts a large uncompressed response to a client that accepts compression (`send`
        itself for one that does not). One call per request decides both."""
        path = scope["path"]
        if path.startswith(self._below) or path == self.prefix:
            return None
        for key, accepted in scope["headers"]:  # (the loop inline: one call per request, this one)
            if key == b"accept-encoding":
                if accepted and any(e in accepted for e in _ENCODINGS):
                    return self._watch(scope, send)
                break
        return send

    def _lifespan(self, receive: Receive) -> Receive:
        async def wrapped() -> Message:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.monitor.start()
            elif message["type"] == "lifespan.shutdown":
                await self.monitor.close()
            return message

        return wrapped

    def _watch(self, scope: Scope, send: Send) -> Send:
        state = {"check": False, "size": 0}

        async def watched(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.get("headers", ())
                encoded = any(k.lower() == b"content-encoding" and v != b"identity" for k, v in headers)
                ctype = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                state["check"] = not encoded and ctype.startswith(_COMPRESSIBLE)
            elif message["type"] == "http.response.body" and state["check"]:
                state["size"] += len(message.get("body", b""))
                if state["size"] > self.threshold:
                    state["check"] = False
                    route = scope.get("perfkit.route")
                    template = getattr(route, "template", None) or "<unmatched>"
                    self.monitor.count_uncompressed(scope.get("method", "GET"), template)
            await send(message)

        return watched
