"""Request coalescing: identical concurrent GETs are answered from one run of the endpoint.

The first request for a key (the leader) runs the app and records its response while sending it; the
others (followers) wait for that recording and replay it. A streamed or oversized response, one that sets
a cookie, is `private` (unless keyed per user) or varies on a header outside the key is not shared:
followers then run the app themselves. Requests with credentials are never coalesced with other
callers' (`perfkit.web.cache_key`). `Coalescer` is also what the response cache uses on a miss, so a cold
key costs one endpoint run per process.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from perfkit.web.cache_key import cache_key, shareable
from perfkit.web.config import WebConfig
from perfkit.web.routing import RouteResolver
from perfkit.web.types import ASGIApp, Headers, Message, Receive, Scope, Send

Recorded = tuple[int, Headers, bytes]


class Recorder:
    """Wraps `send`: forwards every message and keeps a copy of a single-message response."""

    __slots__ = ("_send", "body", "complete", "headers", "limit", "status")

    def __init__(self, send: Send, limit: int) -> None:
        self._send = send
        self.limit = limit
        self.status = 0
        self.headers: Headers = []
        self.body: bytes | None = None
        self.complete = False

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = [(bytes(k), bytes(v)) for k, v in message.get("headers", ())]
        elif message["type"] == "http.response.body":
            body = message.get("body", b"")
            if self.body is None and not message.get("more_body", False) and len(body) <= self.limit:
                self.body = bytes(body)
                self.complete = True
            else:
                self.complete = False
        await self._send(message)

    def result(self) -> Recorded | None:
        if not self.complete or self.body is None:
            return None
        return self.status, self.headers, self.body


async def replay(send: Send, recorded: Recorded, extra: Headers | None = None) -> None:
    status, headers, body = recorded
    await send({"type": "http.response.start", "status": status, "headers": [*headers, *(extra or ())]})
    await send({"type": "http.response.body", "body": body})


class Coalescer:
    """In-flight table: key -> the leader's future recording."""

    def __init__(self) -> None:
        self._inflight: dict[str, asyncio.Future[Recorded | None]] = {}

    async def run(
        self,
        key: str,
        leader: Callable[[], Awaitable[Recorded | None]],
        follower: Callable[[Recorded], Awaitable[None]],
    ) -> Recorded | bool | None:
        """Run `leader` once per key; concurrent callers replay its result via `follower`.

        Returns the leader's recording (leader), True (a follower was served), or False (nothing to share:
        the caller must run the app itself).
        """
        future = self._inflight.get(key)
        if future is not None:
            recorded = await asyncio.shield(future)
            if recorded is None:
                return False
            await follower(recorded)
            return True
        future = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        result: Recorded | None = None
        try:
            result = await leader()
            return result
        finally:
            del self._inflight[key]
            future.set_result(result)


class CoalesceMiddleware:
    """Coalesce identical concurrent GETs on routes whose rule has `coalesce=True`."""

    def __init__(
        self, app: ASGIApp, *, config: WebConfig | None = None, resolver: RouteResolver | None = None
    ) -> None:
        self.app = app
        self.config = config or WebConfig()
        self.resolver = resolver or RouteResolver(app, self.config)
        self.coalescer = Coalescer()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        rule = self.resolver.resolve(scope).rule
        if rule is None or not rule.coalesce:
            await self.app(scope, receive, send)
            return
        key = await cache_key(scope, rule, self.config, "coalesce:")
        if key is None:  # credentials the rule does not key on: never share this request's run
            await self.app(scope, receive, send)
            return

        async def leader() -> Recorded | None:
            recorder = Recorder(send, self.config.cache_max_body)
            await self.app(scope, receive, recorder.send)
            recorded = recorder.result()
            return recorded if recorded is not None and shareable(recorded[1], key) else None

        async def follower(recorded: Recorded) -> None:
            await replay(send, recorded)

        if await self.coalescer.run(key.key, leader, follower) is False:
            await self.app(scope, receive, send)
