"""Send layers (compression, ETag, Cache-Control): a policy that decides per request, and a thin shell.

A send layer's decision method is `filter(scope)`: None when it has nothing to do for this request, else
the request's `Filter`, a plain function that takes each response message and returns the messages to
send on in its place (none while it holds one, two when it releases a held start with the body).
Filters are synchronous: `instrument()`'s pipeline runs every layer's filter in one loop inside its one
`send`, with no coroutine per layer; used alone, a layer is ordinary ASGI middleware (`SendLayer`
below, as starlette's `GZipMiddleware` is) whose `send` runs its filter.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from perfkit.web.config import WebConfig
from perfkit.web.routing import RouteResolver
from perfkit.web.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["Filter", "SendLayer", "run_filters"]

Filter = Callable[[Message], Sequence[Message]]


def run_filters(filters: Sequence[Filter], message: Message) -> Sequence[Message]:
    """`message` through `filters`, innermost first (the order the app's messages meet the layers)."""
    out: Sequence[Message] = (message,)
    for f in filters:
        if len(out) == 1:
            out = f(out[0])
        else:  # (a loop, not a comprehension: a comprehension is one more frame per call)
            more: list[Message] = []
            for m in out:
                more.extend(f(m))
            out = more
    return out


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

    def filter(self, scope: Scope) -> Filter | None:
        """This layer's filter for an HTTP request, or None when it has nothing to do."""
        raise NotImplementedError

    def wrap(self, scope: Scope, send: Send) -> Send:
        """`send` with this layer's filter in front (`send` itself when it has nothing to do)."""
        f = self.filter(scope)
        if f is None:
            return send

        async def send_filtered(message: Message) -> None:
            for out in f(message):
                await send(out)

        return send_filtered
