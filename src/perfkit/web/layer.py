"""Send layers (compression, ETag, Cache-Control): a policy that decides per request, and a thin shell.

A send layer's decision method is `filter(scope)`: None when it has nothing to do for this request, else
the request's `Filter` (`perfkit.web.pipeline`): a plain function that gets the response's start with the
message after it (one call for a response of one body), then each further message, and returns the
messages to send on in their place. Filters are synchronous: `instrument()`'s pipeline runs every layer's
filter in one loop inside its one `send`, with no coroutine per layer. Used alone, a layer is ordinary
ASGI middleware (as starlette's `GZipMiddleware` is) whose shell is that same pipeline with this one layer.
"""

from __future__ import annotations

from perfkit.web.config import WebConfig
from perfkit.web.pipeline import Filter, Pipeline, run_filters
from perfkit.web.routing import RouteResolver
from perfkit.web.types import ASGIApp, Receive, Scope, Send

__all__ = ["Filter", "SendLayer", "run_filters"]


class SendLayer:
    def __init__(
        self, app: ASGIApp, *, config: WebConfig | None = None, resolver: RouteResolver | None = None
    ) -> None:
        self.app = app
        self.config = config or WebConfig()
        self.resolver = resolver or RouteResolver(app, self.config)
        self._shell = Pipeline(app, self.resolver, layers=[self])  # used alone: the one-layer pipeline

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._shell(scope, receive, send)

    def filter(self, scope: Scope) -> Filter | None:
        """This layer's filter for an HTTP request, or None when it has nothing to do."""
        raise NotImplementedError
