"""The thin ASGI shell of a layer whose whole work is a `send` wrapper (compression, ETag, Cache-Control).

The layer's decision method is `wrap(scope, send)`: the `send` to use for this request (`send` itself
when it has nothing to do). Used alone the layer is ordinary ASGI middleware; in `instrument()`'s stack
the pipeline calls `wrap` directly, one loop over the layers, no coroutine of their own per request.
"""

from __future__ import annotations

from perfkit.web.config import WebConfig
from perfkit.web.routing import RouteResolver
from perfkit.web.types import ASGIApp, Receive, Scope, Send

__all__ = ["SendLayer"]


class SendLayer:
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
