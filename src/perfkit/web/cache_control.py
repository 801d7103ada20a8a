"""Cache-Control per route: the rule's policy is added when the app did not set one itself.

Examples: `public, max-age=31536000, immutable` for fingerprinted assets, `private, no-cache` for user
data. Only successful GET/HEAD responses get the policy; errors and other methods are left alone.
"""

from __future__ import annotations

from perfkit.web._asgi import ASGIApp, Message, Receive, Scope, Send, get
from perfkit.web.config import WebConfig
from perfkit.web.routing import RouteResolver


class CacheControlMiddleware:
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
        """This layer's `send` for an HTTP request (`send` itself when it has nothing to do); the outer
        layer of `instrument()` calls it directly, saving this layer's own coroutine per request."""
        if scope["method"] not in ("GET", "HEAD"):
            return send
        rule = self.resolver.resolve(scope).rule
        if rule is None or rule.cache_control is None:
            return send
        policy = rule.cache_control.encode("latin-1")

        async def send_policy(message: Message) -> None:
            if message["type"] == "http.response.start" and 200 <= message["status"] < 400:
                headers = list(message.get("headers", ()))
                if get(headers, b"cache-control") is None:
                    headers.append((b"cache-control", policy))
                    message = {**message, "headers": headers}
            await send(message)

        return send_policy
