"""Rate-limit middleware: 429 with Retry-After over the limit, IETF RateLimit headers on every answer.

Headers follow draft-ietf-httpapi-ratelimit-headers (-08 and later):
`RateLimit-Policy: "default";q=100;w=60` and `RateLimit: "default";r=42;t=18`.
The client is the IP by default, or whatever `config.rate_limit_key(scope)` returns (an API key, a user
id; None exempts the request). Routes share a budget per `Rule.rate_class`, else per route template.
When the backend is down the request is let through (`rate_limit_fail="open"`, the default) without
RateLimit headers (the quota left is unknown, and a guess would tell clients they may speed up) or refused
with 503 (`"closed"`); one warning per outage, not per request.
`RateLimiter` is the policy: one resolution of the request's limit and client, one GCRA decision (the
backend's), one verdict. `RateLimitMiddleware` is the pipeline with the rate limit alone.
"""

from __future__ import annotations

import inspect
import logging
import math
from typing import Any, NamedTuple

from perfkit.errors import BackendError
from perfkit.metrics import Collector, default_collector
from perfkit.web.config import RateLimit, WebConfig
from perfkit.web.pipeline import Pipeline, Refusal, Verdict
from perfkit.web.ratelimit.backend import Decision, RateLimitBackend, create_backend
from perfkit.web.ratelimit.memory import MemoryRateLimit
from perfkit.web.routing import SCOPE_KEY, RouteResolver
from perfkit.web.types import ASGIApp, Scope, Send

__all__ = ["NOT_LIMITED", "RateLimitMiddleware", "RateLimiter", "Refusal", "Verdict", "refuse"]

log = logging.getLogger("perfkit.web.ratelimit")
NOT_LIMITED: Verdict = (None, None)


def _client_ip(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class RatePlan(NamedTuple):
    """What a decision needs per policy, computed once."""

    policy: str
    limit: RateLimit
    key: str  # "<policy>:" (the client is appended)
    policy_header: tuple[bytes, bytes]
    prefix: bytes  # '"<policy>";r='
    allowed: tuple[str, str]  # the decisions counter's labels
    limited: tuple[str, str]
    # [remaining, reset, verdict] of the last allowed answer: a client with its full quota back (most
    # clients, most of the time) gets the same answer as the one before, headers and all
    last: list[Any]


class RateLimiter:
    """Which limit a request falls under, and whether it is within it."""

    def __init__(
        self,
        config: WebConfig,
        resolver: RouteResolver,
        *,
        backend: RateLimitBackend | None = None,
        collector: Collector | None = None,
    ) -> None:
        self.config, self.resolver = config, resolver
        self.backend = backend or create_backend(
            config.rate_limit_url or "memory://", timeout=config.rate_limit_timeout
        )
        self.fail_open = config.rate_limit_fail != "closed"
        self.key_func = config.rate_limit_key
        # the in-process backend decides without a coroutine (`decide_now`) when the client is the IP
        backend = self.backend
        self._now = backend if isinstance(backend, MemoryRateLimit) and self.key_func is None else None
        self._default = config.default_limit
        self.decisions = (collector or default_collector()).counter(
            "ratelimit_decisions_total", ("class", "decision"), "Rate limiter decisions", locked=False
        )
        self._down = False
        self._plans: dict[str, RatePlan] = {}

    def decide_now(self, scope: Scope, plan: RatePlan | None = None) -> Verdict | None:
        """The verdict when it needs no I/O (the in-process backend, the client is the IP); None when
        the caller must `await decide(scope)` (nothing was decided yet). `plan`: the request's
        `plan_for(scope)` when the caller kept it for the route."""
        memory = self._now
        if memory is None:
            return None
        if plan is None:
            plan = self.plan_for(scope)
            if plan is None:
                return NOT_LIMITED
        peer = scope.get("client")
        ip = peer[0] if peer else "unknown"
        if type(ip) is not str:  # (a str already, from every server: no str() call for it)
            ip = str(ip)
        return self._verdict(plan, memory.hit_sync(plan.key + ip, plan.limit))

    async def decide(self, scope: Scope) -> Verdict:
        """Decide one request: (headers to add, None) when allowed, (None, None) when not limited,
        (headers, refusal) when refused."""
        now = self.decide_now(scope)
        if now is not None:
            return now
        plan = self.plan_for(scope)
        if plan is None:
            return NOT_LIMITED
        client = await self._client(scope)
        if client is None:
            return NOT_LIMITED
        decision = await self._decide(plan.key + client, plan)
        if decision is None:  # backend down
            if self.fail_open:  # let it through with no RateLimit headers: the quota left is unknown
                return NOT_LIMITED
            return None, (503, b"rate limiter unavailable", [(b"retry-after", b"1")])
        return self._verdict(plan, decision)

    async def refuse(self, send: Send, refusal: Refusal) -> None:
        """Answer a refused request."""
        await refuse(send, refusal)

    def plan_for(self, scope: Scope) -> RatePlan | None:
        """The request's policy and limit (None: not limited); the pipeline keeps it per route."""
        info = scope.get(SCOPE_KEY) or self.resolver.resolve(scope)
        rule = info.rule
        limit = (rule.limit if rule is not None else None) or self._default
        if limit is None:
            return None
        policy = (rule.rate_class if rule is not None else None) or info.template or "default"
        plan = self._plans.get(policy)
        if plan is None or plan.limit is not limit:
            plan = self._plan(policy, limit)
        return plan

    def _plan(self, policy: str, limit: RateLimit) -> RatePlan:
        name = policy.replace("\\", "").replace('"', "")
        window = max(1, math.ceil(limit.period))
        value = f'"{name}";q={limit.limit};w={window}'.encode("latin-1", "replace")
        prefix = f'"{name}";r='.encode("latin-1", "replace")
        if len(self._plans) > 1024:
            self._plans.clear()
        plan = self._plans[policy] = RatePlan(
            policy, limit, policy + ":", (b"ratelimit-policy", value), prefix,
            (policy, "allowed"), (policy, "limited"), [-1, -1, NOT_LIMITED],
        )  # fmt: skip
        return plan

    def _verdict(self, plan: RatePlan, decision: Decision) -> Verdict:
        """The answer to a decision: its headers (shared by the answers that repeat one: never changed by
        the caller) and the refusal, if refused."""
        if decision.allowed:
            self.decisions.inc(plan.allowed)
            remaining, reset = decision.remaining, math.ceil(decision.reset)
            if reset < 0:
                reset = 0
            last = plan.last
            if last[0] == remaining and last[1] == reset:
                verdict: Verdict = last[2]
                return verdict
            ratelimit = plan.prefix + b"%d;t=%d" % (remaining, reset)
            verdict = [plan.policy_header, (b"ratelimit", ratelimit)], None
            last[:] = remaining, reset, verdict
            return verdict
        self.decisions.inc(plan.limited)
        retry = max(1, math.ceil(decision.retry_after))
        headers = [plan.policy_header, (b"ratelimit", plan.prefix + b"%d;t=%d" % (decision.remaining, retry))]
        return headers, (429, b"rate limit exceeded", [*headers, (b"retry-after", b"%d" % retry)])

    async def _client(self, scope: Scope) -> str | None:
        if self.key_func is None:
            return _client_ip(scope)
        value: Any = self.key_func(dict(scope))
        if inspect.isawaitable(value):
            value = await value
        return None if value is None else str(value)

    async def _decide(self, key: str, plan: RatePlan) -> Decision | None:
        """The backend's decision, or None when it is down (the caller fails open or closed)."""
        try:
            decision = await self.backend.hit(key, plan.limit)
        except BackendError as exc:
            self.decisions.inc((plan.policy, "error"))
            if not self._down:
                self._down = True
                log.warning("rate limiter backend down, failing %s: %s",
                            "open" if self.fail_open else "closed", exc)  # fmt: skip
            return None
        if self._down:
            self._down = False
            log.warning("rate limiter backend is back")
        return decision

    async def close(self) -> None:
        await self.backend.close()


class RateLimitMiddleware(Pipeline):
    """The rate limit alone (`instrument()` puts the same `RateLimiter` in its one pipeline)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        config: WebConfig | None = None,
        backend: RateLimitBackend | None = None,
        collector: Collector | None = None,
        resolver: RouteResolver | None = None,
    ) -> None:
        self.config = config or WebConfig()
        resolver = resolver or RouteResolver(app, self.config)
        limiter = RateLimiter(self.config, resolver, backend=backend, collector=collector)
        self.backend = limiter.backend
        super().__init__(app, resolver, limiter=limiter)


async def refuse(send: Send, refusal: Refusal) -> None:
    """Send a 429/503 refusal as a small JSON body."""
    status, text, headers = refusal
    body = b'{"detail":"' + text + b'"}'
    base = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": [*base, *headers]})
    await send({"type": "http.response.body", "body": body})
