"""Rate-limit middleware: 429 with Retry-After over the limit, IETF RateLimit headers on every answer.

Headers follow draft-ietf-httpapi-ratelimit-headers (-08 and later):
`RateLimit-Policy: "default";q=100;w=60` and `RateLimit: "default";r=42;t=18`.
The client is the IP by default, or whatever `config.rate_limit_key(scope)` returns (an API key, a user
id; None exempts the request). Routes share a budget per `Rule.rate_class`, else per route template.
When the backend is down the request is let through (`rate_limit_fail="open"`, the default) without
RateLimit headers (the quota left is unknown, and a guess would tell clients they may speed up) or refused
with 503 (`"closed"`); one warning per outage, not per request.
"""

from __future__ import annotations

import inspect
import logging
import math
from math import ceil
from typing import Any, NamedTuple

from perfkit.errors import BackendError
from perfkit.metrics import Collector, default_collector
from perfkit.web.config import RateLimit, WebConfig
from perfkit.web.ratelimit.backend import Decision, RateLimitBackend, create_backend
from perfkit.web.ratelimit.memory import MemoryRateLimit
from perfkit.web.routing import SCOPE_KEY, RouteResolver
from perfkit.web.types import ASGIApp, Headers, Message, Receive, Scope, Send

log = logging.getLogger("perfkit.web.ratelimit")
Refusal = tuple[int, bytes, Headers]  # status, detail text, headers


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
        # the in-process backend decides without a coroutine (`admit_now`)
        self._memory = self.backend if isinstance(self.backend, MemoryRateLimit) else None
        self.fail_open = self.config.rate_limit_fail != "closed"
        self.key_func = self.config.rate_limit_key
        self._default = self.config.default_limit
        self.decisions = (collector or default_collector()).counter(
            "ratelimit_decisions_total", ("class", "decision"), "Rate limiter decisions", locked=False
        )
        self._down = False
        self._policies: dict[tuple[str, RateLimit], tuple[bytes, bytes]] = {}
        self._plans: dict[str, _Plan] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers, refusal = await self.admit(scope)
        if refusal is not None:
            await refuse(send, refusal)
            return
        if headers is None:
            await self.app(scope, receive, send)
            return

        async def send_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *headers]}
            await send(message)

        await self.app(scope, receive, send_headers)

    def admit_now(self, scope: Scope) -> tuple[Headers | None, Refusal | None] | None:
        """`admit` without a coroutine when the answer needs no I/O (memory backend, client = IP);
        None when the caller must `await admit(scope)`."""
        memory = self._memory
        if memory is None or self.key_func is not None:
            return None
        info = scope.get(SCOPE_KEY) or self.resolver.resolve(scope)
        rule = info.rule
        limit = (rule.limit if rule is not None else None) or self._default
        if limit is None:
            return None, None
        policy = (rule.rate_class if rule is not None else None) or info.template or "default"
        plan = self._plans.get(policy)
        if plan is None or plan.limit is not limit:
            plan = self._plan(policy, limit)
        peer = scope.get("client")
        ip = peer[0] if peer else "unknown"
        if type(ip) is not str:
            return None
        taken = memory.take(plan.key + ip, plan.interval, plan.period)
        if taken is None:  # refused: `admit` builds the refusal
            return None
        self.decisions.inc(plan.allowed)
        remaining, reset = taken
        return [plan.policy_header, (b"ratelimit", plan.prefix + b"%d;t=%d" % (remaining, ceil(reset)))], None

    def _plan(self, policy: str, limit: RateLimit) -> _Plan:
        value, prefix = self._policy_values(policy, limit)
        if len(self._plans) > 1024:
            self._plans.clear()
        plan = self._plans[policy] = _Plan(
            limit, limit.period / limit.limit, limit.period, policy + ":", (b"ratelimit-policy", value),
            prefix, (policy, "allowed"),
        )  # fmt: skip
        return plan

    async def admit(self, scope: Scope) -> tuple[Headers | None, Refusal | None]:
        """Decide one request: (headers to add, None) when allowed, (None, None) when not limited,
        (headers, refusal) when refused. Used by this middleware and by the fused stack."""
        info = self.resolver.resolve(scope)
        rule = info.rule
        limit = (rule.limit if rule is not None else None) or self.config.default_limit
        if limit is None:
            return None, None
        if self.key_func is None:
            peer = scope.get("client")
            client: str | None = peer[0] if peer else "unknown"
        else:
            client = await self._client(scope)
            if client is None:
                return None, None
        policy = (rule.rate_class if rule is not None else None) or info.template or "default"
        key = f"{policy}:{client}"
        if self._sync_hit is not None:  # memory backend: no coroutine, no await
            decision: Decision | None = self._sync_hit(key, limit)
            self.decisions.inc((policy, "allowed" if decision.allowed else "limited"))  # type: ignore[union-attr]
        else:
            decision = await self._decide(key, limit, policy)
        if decision is None:  # backend down
            if self.fail_open:  # let it through with no RateLimit headers: the quota left is unknown
                return None, None
            return None, (503, b"rate limiter unavailable", [(b"retry-after", b"1")])
        headers = self._headers(policy, limit, decision)
        if not decision.allowed:
            retry = str(max(1, math.ceil(decision.retry_after))).encode()
            return headers, (429, b"rate limit exceeded", [*headers, (b"retry-after", retry)])
        return headers, None

    async def _client(self, scope: Scope) -> str | None:
        if self.key_func is None:
            return _client_ip(scope)
        value: Any = self.key_func(dict(scope))
        if inspect.isawaitable(value):
            value = await value
        return None if value is None else str(value)

    async def _decide(self, key: str, limit: RateLimit, policy: str) -> Decision | None:
        """The backend's decision, or None when it is down (the caller fails open or closed)."""
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
            return None
        if self._down:
            self._down = False
            log.warning("rate limiter backend is back")
        self.decisions.inc((policy, "allowed" if decision.allowed else "limited"))
        return decision

    def _policy_values(self, policy: str, limit: RateLimit) -> tuple[bytes, bytes]:
        """The RateLimit-Policy value and the RateLimit value's prefix, built once per policy."""
        cached = self._policies.get((policy, limit))
        if cached is None:
            name = policy.replace("\\", "").replace('"', "")
            window = max(1, math.ceil(limit.period))
            value = f'"{name}";q={limit.limit};w={window}'.encode("latin-1", "replace")
            prefix = f'"{name}";r='.encode("latin-1", "replace")
            if len(self._policies) > 1024:
                self._policies.clear()
            cached = self._policies[(policy, limit)] = (value, prefix)
        return cached

    def _headers(self, policy: str, limit: RateLimit, decision: Decision) -> Headers:
        cached = self._policy_values(policy, limit)
        if decision.allowed:
            reset = max(0, math.ceil(decision.reset))
        else:
            reset = max(1, math.ceil(decision.retry_after))
        return [
            (b"ratelimit-policy", cached[0]),
            (b"ratelimit", cached[1] + f"{decision.remaining};t={reset}".encode()),
        ]


class _Plan(NamedTuple):
    """What `admit_now` needs per policy, computed once."""

    limit: RateLimit
    interval: float
    period: float
    key: str  # "<policy>:" (the client is appended)
    policy_header: tuple[bytes, bytes]
    prefix: bytes  # '"<policy>";r='
    allowed: tuple[str, str]  # the decisions counter's labels


async def refuse(send: Send, refusal: Refusal) -> None:
    """Send a 429/503 refusal as a small JSON body."""
    status, text, headers = refusal
    body = b'{"detail":"' + text + b'"}'
    base = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": [*base, *headers]})
    await send({"type": "http.response.body", "body": body})
