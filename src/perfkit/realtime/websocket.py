"""`hub.websocket(...)`: the WebSocket endpoint, a pure ASGI app (docs/realtime.md, wire protocol).

The handshake is refused (HTTP 403) for an `Origin` the endpoint does not allow. A connection whose
`auth` returns None is accepted and closed at once with 4401, so a browser client can read why. Then
the endpoint's own task reads client frames and the connection's writer task, only while it has
something to send, writes; the hub closing the connection ends the reading, the client leaving ends
the writing, and the subscriptions are released.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import parse_qs

from perfkit.realtime import protocol as p
from perfkit.realtime.connection import Connection
from perfkit.realtime.security import Access
from perfkit.realtime.session import Host, Runtime, Session
from perfkit.web.ratelimit.backend import GcraTable
from perfkit.web.types import Receive, Scope, Send

CLOSE_WAIT = 1.0  # seconds to wait for the close frame to go out


class WebSocketTransport:
    __slots__ = ("_send",)
    kind = "ws"

    def __init__(self, send: Send) -> None:
        self._send = send

    async def send(self, text: str, position: str | None) -> None:
        await self._send({"type": "websocket.send", "text": text})

    async def comment(self, text: str) -> None:
        return None

    async def close(self, code: int, reason: str) -> None:
        await self._send({"type": "websocket.close", "code": code, "reason": reason})


def query_subscriptions(scope: Scope) -> tuple[list[str], dict[str, p.Position]]:
    """The `?channel=` names and the `?resume=` position of a connect URL."""
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    resume = p.parse_position(query["resume"][-1]) if "resume" in query else {}
    return query.get("channel", []), resume


class WebSocketEndpoint:
    def __init__(self, hub: Host, access: Access) -> None:
        self.hub, self.access = hub, access
        self.limiter = GcraTable()

    @property
    def rt(self) -> Runtime:
        return self.hub.runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await send(
                {"type": "http.response.start", "status": 426, "headers": [(b"upgrade", b"websocket")]}
            )
            await send({"type": "http.response.body", "body": b"a WebSocket endpoint"})
            return
        if (await receive())["type"] != "websocket.connect":
            return
        if not self.access.origin_allowed(scope):
            self.rt.metrics.refused.inc(("origin",))
            await send({"type": "websocket.close", "code": 1008})
            return
        accepted, user = await self.access.authenticate(scope)
        await send({"type": "websocket.accept"})
        if not accepted:
            self.rt.metrics.refused.inc(("unauthorized",))
            await send(
                {
                    "type": "websocket.close",
                    "code": p.CLOSE_UNAUTHORIZED[0],
                    "reason": p.CLOSE_UNAUTHORIZED[1],
                }
            )
            return
        transport = WebSocketTransport(send)
        conn = Connection(transport, self.rt.config, self.rt.metrics, user)
        session = Session(self.rt, conn, self.access, self.limiter)
        await self.hub.serve(conn, session, self._read(conn, session, receive), query_subscriptions(scope))

    async def _read(self, conn: Connection, session: Session, receive: Receive) -> None:
        limit = self.rt.config.max_message
        while conn.closing is None:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                conn.closing = conn.closing or (0, "client")
                return
            conn.last_seen = time.monotonic()
            text = message.get("text")
            if text is None:
                raw = message.get("bytes") or b""
                if len(raw) > limit:
                    conn.close(p.CLOSE_TOO_BIG)
                    return
                try:
                    text = raw.decode()
                except UnicodeDecodeError:
                    session.refuse(p.BAD_REQUEST, "frames are UTF-8 JSON")
                    continue
            elif len(text) > limit // 4 and len(text.encode()) > limit:
                conn.close(p.CLOSE_TOO_BIG)
                return
            await session.handle(text)


async def close_quietly(conn: Connection) -> None:
    """Send the close frame the hub chose (bounded: a stalled client must not hold the handler)."""
    if conn.closing is None or conn.closing[0] == 0:
        return
    try:
        async with asyncio.timeout(CLOSE_WAIT):
            await conn.transport.close(*conn.closing)
    except Exception:  # the client is gone or stalled; the server closes the socket when we return
        return
