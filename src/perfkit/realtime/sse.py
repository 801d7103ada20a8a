"""`hub.sse(...)`: the same channels over Server-Sent Events, a pure ASGI app.

`GET ...?channel=a&channel=b`; resume from `Last-Event-ID` (or `?resume=`), the position format of
docs/realtime.md. Each event is `id: <position>` and `data: <the WebSocket frame's JSON>`; heartbeats
are comment lines. The stream ends when the client disconnects or a send times out.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from perfkit.errors import InvalidArgumentError
from perfkit.realtime import protocol as p
from perfkit.realtime.connection import Connection
from perfkit.realtime.security import Access
from perfkit.realtime.session import Host, Runtime, Session
from perfkit.web.ratelimit.backend import GcraTable
from perfkit.web.types import Receive, Scope, Send

HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-store"),
    (b"x-accel-buffering", b"no"),
]


class SseTransport:
    __slots__ = ("_send",)
    kind = "sse"

    def __init__(self, send: Send) -> None:
        self._send = send

    async def send(self, text: str, position: str | None) -> None:
        head = f"id: {position}\n" if position else ""
        await self._send(
            {"type": "http.response.body", "body": f"{head}data: {text}\n\n".encode(), "more_body": True}
        )

    async def comment(self, text: str) -> None:
        await self._send({"type": "http.response.body", "body": f": {text}\n\n".encode(), "more_body": True})

    async def close(self, code: int, reason: str) -> None:
        await self._send({"type": "http.response.body", "body": b"", "more_body": False})


async def _plain(send: Send, status: int, text: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain; charset=utf-8")],
        }
    )
    await send({"type": "http.response.body", "body": text.encode()})


class SseEndpoint:
    def __init__(self, hub: Host, access: Access) -> None:
        self.hub, self.access = hub, access
        self.limiter = GcraTable()

    @property
    def rt(self) -> Runtime:
        return self.hub.runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope.get("method") not in ("GET", "HEAD"):
            await _plain(send, 405, "GET only")
            return
        if not self.access.origin_allowed(scope):
            self.rt.metrics.refused.inc(("origin",))
            await _plain(send, 403, "origin not allowed")
            return
        accepted, user = await self.access.authenticate(scope)
        if not accepted:
            self.rt.metrics.refused.inc(("unauthorized",))
            await _plain(send, 401, "unauthorized")
            return
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        channels = query.get("channel", [])
        try:
            for channel in channels:
                p.check_channel(channel)
        except InvalidArgumentError as exc:
            await _plain(send, 400, str(exc))
            return
        if not channels:
            await _plain(send, 400, "name at least one channel: ?channel=user:7")
            return
        headers = dict(scope.get("headers") or [])
        raw = headers.get(b"last-event-id", b"").decode("latin-1") or (query.get("resume") or [""])[-1]
        await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
        await send({"type": "http.response.body", "body": b"retry: 1000\n\n", "more_body": True})
        conn = Connection(SseTransport(send), self.rt.config, self.rt.metrics, user)
        session = Session(self.rt, conn, self.access, self.limiter)
        await self.hub.serve(conn, session, self._watch(conn, receive), (channels, p.parse_position(raw)))

    async def _watch(self, conn: Connection, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        conn.closing = conn.closing or (0, "client")
