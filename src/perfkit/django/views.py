"""The monitor's endpoints as a Django view: perfkit.monitor's own ASGI app, served through Django.

`urlpatterns += [path("perf/", include("perfkit.django.urls"))]` serves what `perfkit.instrument()` mounts
under /perf for an ASGI app, with the same handlers and the same token rules (liveness open; reads need
`Authorization: Bearer <PERFKIT['monitor']['token']>` unless `open`; actions always): health, readiness,
Prometheus metrics, the report, findings, alerts, history, jobs, the live stream and the dashboard.

The view hands the request to `perfkit.monitor.routes.MonitorApp` on perfkit's background loop (which
owns the monitor and its store connections) and turns its ASGI messages back into a Django response: an
`HttpResponse` for a complete answer, a `StreamingHttpResponse` for the live stream (a sync iterator
under WSGI, an async one under ASGI, so neither server has to buffer it). The view is async (Django runs
it as it is under ASGI, through `async_to_sync` under WSGI), exempt from CSRF (its actions are
authorised by the Bearer token, never by a cookie), and marked so `PerfkitMiddleware` leaves its
requests out of the traffic metrics, as the ASGI stack does for /perf.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import queue
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit

from django.http import HttpResponse, JsonResponse, StreamingHttpResponse

from perfkit.django import background
from perfkit.django.monitoring import DjangoMonitor, get_monitor
from perfkit.django.request import apply_start, scope_of
from perfkit.monitor.routes import MonitorApp
from perfkit.web.types import Message, Scope

__all__ = ["monitor"]

FIRST_ANSWER = 60.0  # seconds to wait for the monitor's response to start (readiness is bounded anyway)
_apps: dict[tuple[int, str], tuple[DjangoMonitor, MonitorApp]] = {}


@functools.lru_cache(maxsize=4096)
def page_route(url: str) -> str:
    """A RUM beacon's page as its URL pattern (`"/" + resolver_match.route`, as the middleware names
    routes), or "other" when the path resolves to no pattern."""
    from django.urls import Resolver404, resolve

    try:
        route = getattr(resolve(urlsplit(url).path or "/"), "route", None)
    except (Resolver404, ValueError):
        return "other"
    return "/" + route if isinstance(route, str) else "other"


def _app(monitor: DjangoMonitor, mount: str) -> MonitorApp:
    key = (id(monitor), mount)
    found = _apps.get(key)
    if found is None or found[0] is not monitor:
        if len(_apps) > 64:
            _apps.clear()
        found = _apps[key] = (monitor, MonitorApp(monitor, prefix=mount, routes=page_route))
    return found[1]


class _Exchange:
    """One request to the monitor app on the background loop; its messages come back through a
    thread-safe queue (None after the last)."""

    def __init__(self, app: MonitorApp, scope: Scope, body: bytes) -> None:
        self.app, self.scope, self.body = app, scope, body
        self.messages: queue.Queue[Message | None] = queue.Queue()
        self.gone = asyncio.Event()  # (bound to the loop that first waits on it: the background one)
        self.loop = background.loop()

    async def run(self) -> None:  # on the background loop
        sent = False

        async def receive() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": self.body, "more_body": False}
            await self.gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            self.messages.put(message)

        try:
            await self.app(self.scope, receive, send)
        finally:
            self.messages.put(None)

    def start(self) -> None:
        asyncio.run_coroutine_threadsafe(self.run(), self.loop)

    def disconnect(self) -> None:
        """The client went away (or the stream was closed): the app's `receive` says so."""

        with contextlib.suppress(RuntimeError):  # the loop was stopped meanwhile
            self.loop.call_soon_threadsafe(self.gone.set)

    def next(self, timeout: float | None = FIRST_ANSWER) -> Message | None:
        """The app's next message; None after its last one, or after `timeout` seconds without one."""
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            return None

    def chunks(self, first: bytes) -> Iterator[bytes]:
        try:
            yield first
            while (message := self.next()) is not None:
                if message["type"] == "http.response.body":
                    yield bytes(message.get("body", b""))
                    if not message.get("more_body", False):
                        return
        finally:
            self.disconnect()

    async def achunks(self, first: bytes) -> AsyncIterator[bytes]:
        try:
            yield first
            while (message := await asyncio.to_thread(self.next)) is not None:
                if message["type"] == "http.response.body":
                    yield bytes(message.get("body", b""))
                    if not message.get("more_body", False):
                        return
        finally:
            self.disconnect()


async def _answer(exchange: _Exchange, asgi: bool) -> Any:
    start = await asyncio.to_thread(exchange.next, FIRST_ANSWER)
    if start is None or start["type"] != "http.response.start":
        exchange.disconnect()
        return JsonResponse({"error": "the monitor did not answer"}, status=503)
    first = await asyncio.to_thread(exchange.next, FIRST_ANSWER)
    body = bytes(first.get("body", b"")) if first is not None else b""
    if first is None or not first.get("more_body", False):
        response: Any = HttpResponse(body)
        apply_start(response, start)
        return response
    streamed = {
        **start,
        "headers": [h for h in start.get("headers", ()) if h[0].lower() != b"content-length"],
    }
    content = exchange.achunks(body) if asgi else exchange.chunks(body)
    response = StreamingHttpResponse(content)
    apply_start(response, streamed)
    return response


async def monitor(request: Any, rest: str = "") -> Any:
    """Every monitoring endpoint under the `include()` path (`rest`: the part after it)."""
    found = get_monitor()
    if found is None:
        return JsonResponse({"error": "the monitor is off (PERFKIT['monitor'] is False)"}, status=404)
    path = request.path
    mount = path[: len(path) - len(rest)].rstrip("/") if rest else path.rstrip("/")
    scope = scope_of(request)
    scope["path"], scope["root_path"] = mount + "/" + rest, ""
    exchange = _Exchange(_app(found, mount), scope, request.body)
    exchange.start()
    return await _answer(exchange, hasattr(request, "scope"))


# (attributes, not `@csrf_exempt`: Django 4.2's decorator would hide that the view is async)
monitor.csrf_exempt = True  # type: ignore[attr-defined]  # Bearer-token actions, never cookie-authorised
monitor.perfkit_monitor = True  # type: ignore[attr-defined]  # PerfkitMiddleware: not traffic
