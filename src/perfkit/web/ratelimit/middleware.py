"""Rate-limit middleware: 429 with Retry-After over the limit, IETF RateLimit headers on every answer.

Headers follow draft-ietf-httpapi-ratelimit-headers (-08 and later):
`RateLimit-Policy: "default";q=100;w=60` and `RateLimit: "default";r=42;t=18`.
The client is the IP by default, or whatever `config.rate_limit_key(scope)` returns (an API key, a user
id; None exempts the request). Routes share a budget per `Rule.rate_class`, else per route template.
When the backend is down the request is let through (`rate_limit_fail="open"`, the default) or refused
with 503 (`"closed"`); one warning per outage, not per request.
"""

from __future__ import annotations

import inspect
import logging
import math
from typing import Any

from perfkit.errors import BackendError
from perfkit.metrics import Collector, default_collector
from perfkit.web._asgi import ASGIApp, Message, Receive, Scope, Send
from perfkit.web.config import RateLimit, WebConfig
from perfkit.web.ratelimit.backend import Decision, RateLimitBackend, create_backend
from perfkit.web.routing import RouteResolver

log = logging.getLogger("perfkit.web.ratelimit")


def _client_ip(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class RateLimitMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        config: WebConfig | None = None,
        backend: RateLimitBackend | None = None,
        collector: Collector | None = None,
        resolver: RouteResolver | None = None,
    ) -> None:
        self.app = app
        self.config = config or WebConfig()
        self.resolver = resolver or RouteResolver(app, self.config)
        self.backend = backend or create_backend(
            self.config.rate_limit_url or "memory://", timeout=self.config.rate_limit_timeout
        )
        self._sync_hit = getattr(self.backend, "hit_sync", None)
        self.fail_open = self.config.rate_limit_fail != "closed"
        self.key_func = self.config.rate_limit_key
        self.decisions = (collector or default_collector()).counter(
            "ratelimit_decisions_total", ("class", "decision"), "Rate limiter decisions"
        )
        self._down = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        info = self.resolver.resolve(scope)
        rule = info.rule
        limit = (rule.limit if rule is not None else None) or self.config.default_limit
        if limit is None:
            await self.app(scope, receive, send)
            return
        client = await self._client(scope)
        if client is None:
            await self.app(scope, receive, send)
            return
        policy = (rule.rate_class if rule is not None else None) or info.template or "default"
        key = f"{policy}:{client}"
        decision = await self._decide(key, limit, policy)
        if decision is None:  # backend down, failing closed
            await self._refuse(send, 503, b"rate limiter unavailable", [(b"retry-after", b"1")])
            return
        headers = self._headers(policy, limit, decision)
        if not decision.allowed:
            retry = str(max(1, math.ceil(decision.retry_after))).encode()
            await self._refuse(send, 429, b"rate limit exceeded", [*headers, (b"retry-after", retry)])
            return

        async def send_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *headers]}
            await send(message)

        await self.app(scope, receive, send_headers)

    async def _client(self, scope: Scope) -> str | None:
        if self.key_func is None:
            return _client_ip(scope)
        value: Any = self.key_func(dict(scope))
        if inspect.isawaitable(value):
            value = await value
        return None if value is None else str(value)

    async def _decide(self, key: str, limit: RateLimit, policy: str) -> Decision | None:
        try:
            if self._sync_hit is not None:
                decision: Decision = self._sync_hit(key, limit)
            else:
                decision = await self.backend.hit(key, limit)
        except BackendError as exc:
            self.decisions.inc((policy, "error"))
            if not self._down:
                self._down = True
                log.warning("rate limiter backend down, failing %s: %s",
                            "open" if self.fail_open else "closed", exc)  # fmt: skip
            if self.fail_open:
                return Decision(True, limit.limit, 0.0, 0.0)
            return None
        if self._down:
            self._down = False
            log.warning("rate limiter backend is back")
        self.decisions.inc((policy, "allowed" if decision.allowed else "limited"))
        return decision

    @staticmethod
    def _headers(policy: str, limit: RateLimit, decision: Decision) -> list[tuple[bytes, bytes]]:
        name = policy.replace("\\", "").replace('"', "")
        window = max(1, math.ceil(limit.period))
        if decision.allowed:
            reset = max(0, math.ceil(decision.reset))
        else:
            reset = max(1, math.ceil(decision.retry_after))
        return [
            (b"ratelimit-policy", f'"{name}";q={limit.limit};w={window}'.encode("latin-1", "replace")),
            (b"ratelimit", f'"{name}";r={decision.remaining};t={reset}'.encode("latin-1", "replace")),
        ]

    @staticmethod
    async def _refuse(send: Send, status: int, text: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        body = b'{"detail":"' + text + b'"}'
        base = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": [*base, *headers]})
        await send({"type": "http.response.body", "body": body})
