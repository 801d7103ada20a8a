"""Response cache: GET responses of chosen routes kept in a perfkit `Cache`, with tags and `X-Cache`.

A route is cached when its rule sets `cache_ttl`. The key (`perfkit.web.cache_key`) is the method, scheme,
Host, path, query (unless `cache_query=False`), the request headers in `cache_vary`, and the user when
`cache_per_user` is set. A request with credentials (Authorization, Cookie) that the rule does not key on
bypasses the cache (`X-Cache: BYPASS`): not read, not stored, not coalesced. Entries carry the rule's
`cache_tags` (formatted with path parameters, e.g. `ticket:{ticket_id}`), the ORM dependency tags of
`cache_depends_on` (`Ticket.id == "{ticket_id}"`: the `perfkit.cache.orm.CacheInvalidator` evicts the
response when that row changes), and any tags the endpoint lists in an `X-Cache-Tags` response header
(removed before sending); `cache.invalidate_tags` evicts them. Only complete 2xx responses without
Set-Cookie and without `no-store` (or `private`, unless the key names who asks) are stored. A miss is
coalesced: concurrent identical requests share one run of the endpoint.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from perfkit.errors import PerfkitError
from perfkit.metrics import Collector, default_collector
from perfkit.web.cache_key import CacheKey, cache_key, shareable
from perfkit.web.coalesce import Coalescer, Recorded, Recorder, replay
from perfkit.web.config import Rule, WebConfig
from perfkit.web.headers import get, without
from perfkit.web.routing import RouteResolver
from perfkit.web.types import ASGIApp, Headers, Message, Receive, Scope, Send

log = logging.getLogger("perfkit.web.cache")
_MISSING: Any = object()
HIT = [(b"x-cache", b"HIT")]
MISS = [(b"x-cache", b"MISS")]
BYPASS = [(b"x-cache", b"BYPASS")]


def cacheable(recorded: Recorded, key: CacheKey) -> bool:
    """2xx, shareable (no Set-Cookie; `private` only in an entry keyed by who asks; `Vary` only on headers
    in the key) and not `no-store`."""
    status, headers, _ = recorded
    if not 200 <= status < 300 or not shareable(headers, key):
        return False
    return not any(k.lower() == b"cache-control" and b"no-store" in v.lower() for k, v in headers)


_DEPENDENCIES: dict[int, tuple[Rule, Any]] = {}


def _dependency_tags(rule: Rule, params: dict[str, str]) -> list[str]:
    """Tags of the rule's `cache_depends_on`, in the ORM invalidator's format (compiled once per rule)."""
    entry = _DEPENDENCIES.get(id(rule))
    if entry is None or entry[0] is not rule:
        from perfkit.cache.orm.deps import compile_dependencies

        entry = _DEPENDENCIES[id(rule)] = (rule, compile_dependencies(rule.cache_depends_on))
    tags: list[str] = entry[1](params)
    return tags


def tags_for(rule: Rule, scope: Scope, headers: Headers) -> list[str]:
    params = {k: str(v) for k, v in (scope.get("path_params") or {}).items()}
    tags = _dependency_tags(rule, params) if rule.cache_depends_on else []
    for tag in rule.cache_tags:
        try:
            tags.append(tag.format(**params))
        except (KeyError, IndexError, ValueError):
            tags.append(tag)
    extra = get(headers, b"x-cache-tags")
    if extra:
        tags.extend(t.strip() for t in extra.decode("latin-1").split(",") if t.strip())
    return tags


class ResponseCacheMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        cache: Any,
        config: WebConfig | None = None,
        collector: Collector | None = None,
        resolver: RouteResolver | None = None,
    ) -> None:
        self.app = app
        self.cache = cache
        self.config = config or WebConfig()
        self.resolver = resolver or RouteResolver(app, self.config)
        self.coalescer = Coalescer()
        self.results = (collector or default_collector()).counter(
            "http_response_cache_total", ("route", "result"), "Response cache lookups by result"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        info = self.resolver.resolve(scope)
        rule = info.rule
        if rule is None or rule.cache_ttl is None:
            await self.app(scope, receive, send)
            return
        route = info.template or "<unmatched>"
        found = await cache_key(scope, rule, self.config, "response:")
        if found is None:  # credentials this rule does not key on: not read, not stored, not coalesced
            self.results.inc((route, "bypass"))
            await self.app(scope, receive, _to_client(send, BYPASS))
            return
        key = found.key
        entry = await self._lookup(key)
        if entry is not None:
            self.results.inc((route, "hit"))
            age = str(max(0, int(time.time() - entry["t"]))).encode()
            await replay(send, (entry["s"], [(bytes(k), bytes(v)) for k, v in entry["h"]], entry["b"]),
                         [*HIT, (b"age", age)])  # fmt: skip
            return

        self.results.inc((route, "miss"))
        if getattr(self.cache, "get_or_set", None) is None:  # a cache-like object without stampede control
            await self._coalesced(scope, receive, send, found, rule, route)
            return
        await self._load(scope, receive, send, found, rule, route)

    async def _load(
        self, scope: Scope, receive: Receive, send: Send, found: CacheKey, rule: Rule, route: str
    ) -> None:
        """A miss through `cache.get_or_set`: one run of the endpoint per key in this process (the cache's
        in-flight table) and, with a shared L2 (Redis, SQLite), across processes (the cache's lock). The
        request whose loader runs answers its own client while recording; the others replay the entry."""
        ran = finished = False
        tags: list[str] = []

        async def load() -> dict[str, Any]:
            nonlocal ran, finished
            ran = True
            recorder = Recorder(_to_client(send), self.config.cache_max_body)
            await self.app(scope, receive, recorder.send)
            finished = True
            recorded = recorder.result()
            if recorded is None or not cacheable(recorded, found):
                raise _NotShared
            status, headers, body = recorded
            tags.extend(tags_for(rule, scope, headers))
            clean = without(headers, b"x-cache-tags")
            return {"s": status, "h": [[k, v] for k, v in clean], "b": body, "t": time.time()}

        try:
            entry = await self.cache.get_or_set(found.key, load, rule.cache_ttl, tags=lambda _: tags)
        except _NotShared:
            if not ran:  # the leader's answer cannot be shared: run the app for this request
                await self.app(scope, receive, _to_client(send))
            return
        except PerfkitError as exc:
            if ran and not finished:  # raised by the app itself
                raise
            log.warning("response cache store failed: %s", exc)
            if not ran:
                await self.app(scope, receive, _to_client(send))
            return
        except Exception:
            if ran:  # the app failed while this request ran it
                raise
            await self.app(scope, receive, _to_client(send))  # as before: a follower runs the app itself
            return
        if ran:
            return
        if not isinstance(entry, dict):  # not one of our entries: answer from the app
            await self.app(scope, receive, _to_client(send))
            return
        self.results.inc((route, "coalesced"))
        await replay(send, (entry["s"], [(bytes(k), bytes(v)) for k, v in entry["h"]], entry["b"]), MISS)

    async def _coalesced(
        self, scope: Scope, receive: Receive, send: Send, found: CacheKey, rule: Rule, route: str
    ) -> None:
        """The miss path for cache-like objects without `get_or_set`: coalescing in this process only."""

        async def leader() -> Recorded | None:
            recorder = Recorder(_to_client(send), self.config.cache_max_body)
            await self.app(scope, receive, recorder.send)
            recorded = recorder.result()
            if recorded is None or not cacheable(recorded, found):
                return None
            status, headers, body = recorded
            clean = (status, without(headers, b"x-cache-tags"), body)
            await self._store(found.key, clean, rule, tags_for(rule, scope, headers))
            return clean

        async def follower(recorded: Recorded) -> None:
            self.results.inc((route, "coalesced"))
            await replay(send, recorded, MISS)

        if await self.coalescer.run(found.key, leader, follower) is False:
            await self.app(scope, receive, _to_client(send))

    async def _lookup(self, key: str) -> dict[str, Any] | None:
        try:
            entry = await self.cache.get(key, _MISSING)
        except PerfkitError as exc:  # a broken cache is a miss, never an error page
            log.warning("response cache lookup failed: %s", exc)
            return None
        return entry if isinstance(entry, dict) else None

    async def _store(self, key: str, recorded: Recorded, rule: Rule, tags: list[str]) -> None:
        status, headers, body = recorded
        entry = {"s": status, "h": [[k, v] for k, v in headers], "b": body, "t": time.time()}
        try:
            await self.cache.set(key, entry, ttl=rule.cache_ttl, tags=tags)
        except PerfkitError as exc:
            log.warning("response cache store failed: %s", exc)


class _NotShared(Exception):
    """Raised out of the cache's loader: this response (streamed, non-2xx, no-store, ...) is not stored."""


def _to_client(send: Send, marker: Headers = MISS) -> Send:
    """Drops `X-Cache-Tags` (it is for the cache, not the client) and adds `X-Cache: MISS` (or `BYPASS`)."""

    async def send_miss(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = without(list(message.get("headers", ())), b"x-cache-tags")
            message = {**message, "headers": [*headers, *marker]}
        await send(message)

    return send_miss
