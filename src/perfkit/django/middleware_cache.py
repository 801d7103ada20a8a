"""The GET response cache and request coalescing for Django views, sync and async.

The key, what may be shared and what may be stored are perfkit.web's (`cache_key`, `shareable`,
`cacheable`, `tags_for`): a request with credentials (Django's session cookie, any Cookie, Authorization)
that its rule does not key on bypasses the cache and coalescing (`X-Cache: BYPASS`), a response that
sets a cookie is never stored, `cache_per_user=True` keys by `request.user`. Entries are the ASGI
stack's, so a Django project and an ASGI app on one cache read each other's.

Django resolves the URL inside its handler, so the lookup is made in `process_view` (the route and
`request.user` are known; a hit answers without running the view) and the store when the response comes
back through the middleware. A miss is coalesced per process: concurrent identical requests wait for the
first one's response (threads under WSGI, tasks under ASGI) instead of each running the view.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from perfkit.django.background import drive
from perfkit.django.request import apply_start, headers_of
from perfkit.errors import PerfkitError
from perfkit.metrics import Collector
from perfkit.web.cache_key import CacheKey, cache_key, shareable
from perfkit.web.coalesce import Recorded
from perfkit.web.config import Rule, WebConfig
from perfkit.web.headers import without
from perfkit.web.response_cache import BYPASS, HIT, MISS, cacheable, tags_for
from perfkit.web.routing import UNMATCHED, RouteInfo
from perfkit.web.types import Headers, Scope

__all__ = ["CacheState", "ResponseCache"]

log = logging.getLogger("perfkit.django")
_MISSING: Any = object()
FOLLOW_TIMEOUT = 30.0  # a follower waits this long for the leader's response, then runs the view itself


@dataclass
class CacheState:
    """What `process_view` decided for a request, for the response's way back."""

    rule: Rule
    route: str
    key: CacheKey | None  # None: bypassed (credentials the rule does not key on)
    store: bool  # the response cache (True) or coalescing only (False)
    params: dict[str, Any]  # the view's keyword arguments: `cache_tags` are formatted with them
    leader: bool = False  # this request runs the view for the others waiting on its key
    marker: Headers | None = None  # X-Cache for the client


def response_of(recorded: Recorded, marker: Headers) -> Any:
    from django.http import HttpResponse

    status, headers, body = recorded
    response = HttpResponse(body, status=status)
    apply_start(response, {"status": status, "headers": [*headers, *marker]})
    return response


class _Flight:
    __slots__ = ("done", "result")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: Recorded | None = None


class ResponseCache:
    """The lookup (`lookup` / `alookup`, from `process_view`) and the store (`finish` / `afinish`)."""

    def __init__(self, cache: Any, config: WebConfig, collector: Collector) -> None:
        self.cache, self.config = cache, config
        self.sync_cache: Any = cache.sync if cache is not None else None  # (None: coalescing only)
        self.results = collector.counter(
            "http_response_cache_total", ("route", "result"), "Response cache lookups by result"
        )
        self._threads: dict[str, _Flight] = {}
        self._tasks: dict[str, asyncio.Future[Recorded | None]] = {}
        self._lock = threading.Lock()

    def wanted(self, scope: Scope, info: RouteInfo) -> bool:
        rule = info.rule
        if rule is None or scope["method"] != "GET":
            return False
        return (rule.cache_ttl is not None and self.cache is not None) or bool(
            rule.coalesce and self.config.coalesce
        )

    def _state(self, scope: Scope, info: RouteInfo, key: CacheKey | None) -> CacheState:
        rule = info.rule
        assert rule is not None  # checked by `wanted`
        store = rule.cache_ttl is not None and self.cache is not None
        state = CacheState(rule, info.template or UNMATCHED, key, store, dict(scope.get("path_params") or {}))
        if key is None:
            state.marker = BYPASS if store else None
            if store:
                self.results.inc((state.route, "bypass"))
        return state

    # -- sync (WSGI, and sync tests) -------------------------------------------------------------
    def lookup(self, scope: Scope, info: RouteInfo) -> tuple[CacheState, Any]:
        """(state, a response to answer with instead of running the view, or None)."""
        rule = info.rule
        prefix = "response:" if rule is not None and rule.cache_ttl is not None else "coalesce:"
        state = self._state(
            scope, info, drive(cache_key(scope, rule, self.config, prefix), "rules.cache_per_user")
        )
        if state.key is None:
            return state, None
        key = state.key.key
        if state.store:
            entry = self._get(key)
            if entry is not None:
                return state, self._hit(state, entry)
            self.results.inc((state.route, "miss"))
            state.marker = MISS
        with self._lock:
            flight = self._threads.get(key)
            if flight is None:
                self._threads[key] = _Flight()
                state.leader = True
                return state, None
        if flight.done.wait(FOLLOW_TIMEOUT) and flight.result is not None:
            return state, self._replay(state, flight.result)
        return state, None

    def finish(self, state: CacheState, response: Any) -> None:
        recorded = self._record(state, response)
        if state.leader and state.key is not None:
            if recorded is not None and state.store and cacheable(recorded, state.key):
                self._set(state.key.key, state.rule.cache_ttl, recorded, self._tags(state, recorded))
            with self._lock:
                flight = self._threads.pop(state.key.key, None)
            if flight is not None:
                flight.result = recorded if recorded is not None and self._shared(state, recorded) else None
                flight.done.set()
        self._mark(state, response)

    def _get(self, key: str) -> dict[str, Any] | None:
        try:
            entry = self.sync_cache.get(key, _MISSING)
        except PerfkitError as exc:  # a broken cache is a miss, never an error page
            log.warning("response cache lookup failed: %s", exc)
            return None
        return entry if isinstance(entry, dict) else None

    def _set(self, key: str, ttl: float | None, recorded: Recorded, tags: list[str]) -> None:
        try:
            self.sync_cache.set(key, _entry(recorded), ttl=ttl, tags=tags)
        except PerfkitError as exc:
            log.warning("response cache store failed: %s", exc)

    # -- async (ASGI) ------------------------------------------------------------------------------
    async def alookup(self, scope: Scope, info: RouteInfo) -> tuple[CacheState, Any]:
        rule = info.rule
        prefix = "response:" if rule is not None and rule.cache_ttl is not None else "coalesce:"
        state = self._state(scope, info, await cache_key(scope, rule, self.config, prefix))
        if state.key is None:
            return state, None
        key = state.key.key
        if state.store:
            entry = await self._aget(key)
            if entry is not None:
                return state, self._hit(state, entry)
            self.results.inc((state.route, "miss"))
            state.marker = MISS
        future = self._tasks.get(key)
        if future is None:
            self._tasks[key] = asyncio.get_running_loop().create_future()
            state.leader = True
            return state, None
        try:
            recorded = await asyncio.wait_for(asyncio.shield(future), FOLLOW_TIMEOUT)
        except TimeoutError:
            recorded = None
        return state, self._replay(state, recorded) if recorded is not None else None

    async def afinish(self, state: CacheState, response: Any) -> None:
        recorded = self._record(state, response)
        if state.leader and state.key is not None:
            shared = None
            try:
                if recorded is not None and state.store and cacheable(recorded, state.key):
                    await self._aset(
                        state.key.key, state.rule.cache_ttl, recorded, self._tags(state, recorded)
                    )
                shared = recorded if recorded is not None and self._shared(state, recorded) else None
            finally:
                future = self._tasks.pop(state.key.key, None)
                if future is not None and not future.done():
                    future.set_result(shared)
        self._mark(state, response)

    def release(self, state: CacheState) -> None:
        """The view raised: wake the followers (they run the view themselves)."""
        if not state.leader or state.key is None:
            return
        with self._lock:
            flight = self._threads.pop(state.key.key, None)
        if flight is not None:
            flight.done.set()
        future = self._tasks.pop(state.key.key, None)
        if future is not None and not future.done():
            future.set_result(None)

    async def _aget(self, key: str) -> dict[str, Any] | None:
        try:
            entry = await self.cache.get(key, _MISSING)
        except PerfkitError as exc:
            log.warning("response cache lookup failed: %s", exc)
            return None
        return entry if isinstance(entry, dict) else None

    async def _aset(self, key: str, ttl: float | None, recorded: Recorded, tags: list[str]) -> None:
        try:
            await self.cache.set(key, _entry(recorded), ttl=ttl, tags=tags)
        except PerfkitError as exc:
            log.warning("response cache store failed: %s", exc)

    # -- shared ------------------------------------------------------------------------------------
    def _hit(self, state: CacheState, entry: dict[str, Any]) -> Any:
        self.results.inc((state.route, "hit"))
        age = str(max(0, int(time.time() - entry["t"]))).encode()
        headers = [(bytes(k), bytes(v)) for k, v in entry["h"]]
        return response_of((entry["s"], headers, entry["b"]), [*HIT, (b"age", age)])

    def _replay(self, state: CacheState, recorded: Recorded) -> Any:
        self.results.inc((state.route, "coalesced"))
        return response_of(recorded, MISS if state.store else [])

    def _record(self, state: CacheState, response: Any) -> Recorded | None:
        """The leader's complete response (None: streamed, too large, or nothing to share)."""
        if not state.leader or getattr(response, "streaming", False):
            return None
        body = response.content
        if len(body) > self.config.cache_max_body:
            return None
        return response.status_code, headers_of(response), bytes(body)

    def _shared(self, state: CacheState, recorded: Recorded) -> bool:
        assert state.key is not None  # only leaders with a key share
        if state.store:
            return cacheable(recorded, state.key)
        return 200 <= recorded[0] < 300 and shareable(recorded[1], state.key)

    def _tags(self, state: CacheState, recorded: Recorded) -> list[str]:
        return tags_for(state.rule, {"path_params": state.params}, recorded[1])

    @staticmethod
    def _mark(state: CacheState, response: Any) -> None:
        if response.has_header("x-cache-tags"):
            del response["x-cache-tags"]
        if state.marker:
            for name, value in state.marker:
                response[name.decode()] = value.decode()


def _entry(recorded: Recorded) -> dict[str, Any]:
    status, headers, body = recorded
    clean = without([h for h in headers if h[0] != b"set-cookie"], b"x-cache-tags")
    return {"s": status, "h": [[k, v] for k, v in clean], "b": body, "t": time.time()}
