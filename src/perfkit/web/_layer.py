"""The shape shared by the layers that only wrap `send` (compression, ETag, Cache-Control)."""

from __future__ import annotations

from perfkit.web.config import WebConfig
from perfkit.web.routing import RouteResolver
from perfkit.web.types import ASGIApp, Receive, Scope, Send


class SendLayer:
    """Middleware whose whole work is `wrap(scope, send)`. Used alone it is ordinary ASGI middleware;
    `instrument()`'s outer layer calls `wrap` directly, saving one coroutine per layer per request."""

    def __init__(
        self, app: ASGIApp, *, config: WebConfig | None = None, resolver: RouteResolver | None = None
    ) -> None:
        self.app = app
        self.config = config or WebConfig()
        self.resolver = resolver or RouteResolver(app, self.config)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.app(scope, receive, self.wrap(scope, send))

    def wrap(self, scope: Scope, send: Send) -> Send:
        """This layer's `send` for an HTTP request (`send` itself when it has nothing to do)."""
        raise NotImplementedError
