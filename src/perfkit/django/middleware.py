"""`PerfkitMiddleware`: perfkit's web layer for Django, one class, sync and async capable.

    MIDDLEWARE = ["perfkit.django.PerfkitMiddleware", ...]   # first: it times everything below it

Under WSGI it is a plain sync middleware, under ASGI a coroutine (Django's `markcoroutinefunction`), so
Django never adapts it into a thread. Each request is turned into an ASGI scope once
(`perfkit.django.request`) and goes through perfkit.web's own policies: `Timing` (X-Request-ID kept when
valid, else new; `Server-Timing` total/app/db with the query count/cache, read from the request's
`perfkit.metrics.RequestStats` that the SQL hooks fill), `RequestMetrics` (per URL pattern, never the raw
path, and method: the ASGI stack's metric names), `RateLimiter`, and the send layers' filters
(compression, ETag/304, Cache-Control) over the response. The rate limit and the response cache decide in
`process_view`, once Django has resolved the URL (rules match by URL name or path) and before the view.
With `PERFKIT["otel"]`, each request is one OpenTelemetry server span (`perfkit.otel.web.RequestTracer`,
`perfkit.django.otel`), current while the view runs, named by the URL pattern in `process_view`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from time import perf_counter
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

from perfkit.django import background
from perfkit.django.middleware_cache import CacheState
from perfkit.django.middleware_policies import Policies, current
from perfkit.django.middleware_response import filter_response
from perfkit.django.request import scope_of
from perfkit.metrics import RequestStats, end_request, start_request
from perfkit.web.layer import Filter
from perfkit.web.routing import SCOPE_KEY, UNMATCHED
from perfkit.web.types import Headers, Scope

__all__ = ["PerfkitMiddleware"]

SCOPE_ATTRIBUTE = "perfkit_scope"  # the request's scope, for process_view and for the views
_STATS, _EXTRA, _CACHE, _SKIP = "perfkit.stats", "perfkit.extra", "perfkit.cache", "perfkit.skip"
_POLICIES, _OTEL = "perfkit.policies", "perfkit.otel"
log = logging.getLogger("perfkit.django")


def _refusal(refusal: tuple[int, bytes, Headers]) -> Any:
    from django.http import HttpResponse

    status, text, headers = refusal
    response = HttpResponse(b'{"detail":"' + text + b'"}', status=status, content_type="application/json")
    for name, value in headers:
        response[name.decode("latin-1")] = value.decode("latin-1")
    return response


_warned: set[str] = set()  # database aliases already warned about in this process


def warn_persistent_connections() -> None:
    """Under ASGI each request's sync work runs in a thread of its own, so `CONN_MAX_AGE > 0` (or None)
    keeps one database connection open per such thread: connections pile up until the server refuses
    them ("too many clients"). Django's docs say to disable persistent connections under ASGI; perfkit
    says so once per alias at start-up, in its log."""
    from django.conf import settings

    for alias, db in getattr(settings, "DATABASES", {}).items():
        age = db.get("CONN_MAX_AGE", 0)
        if alias in _warned or age == 0 or "sqlite" in str(db.get("ENGINE", "")):
            continue
        _warned.add(alias)
        log.warning(
            "DATABASES[%r] has CONN_MAX_AGE=%r under ASGI: every request thread keeps its own connection "
            "open, so they pile up; set CONN_MAX_AGE=0 (Django's advice for ASGI) or use a pool",
            alias, age,
        )  # fmt: skip


class PerfkitMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)
            # Django adapts process_view to the handler's mode by what it is: give it the async one
            self.process_view = self.aprocess_view  # type: ignore[method-assign]
            warn_persistent_connections()
        current()  # a bad PERFKIT setting (a cache rule without a perfkit cache) fails at start-up

    # -- the request's bracket ----------------------------------------------------------------------
    def _open(self, policies: Policies, request: Any) -> tuple[Scope, RequestStats, Any, bytes]:
        scope = scope_of(request, policies.header_keys)
        request_id = policies.timing.request_id(scope)
        stats, token = start_request(UNMATCHED)
        scope[_STATS], scope[_POLICIES] = stats, policies
        request.perfkit_scope = scope  # (SCOPE_ATTRIBUTE)
        tracer = policies.tracer
        if tracer is not None and tracer.active() and not policies.untraced(request.path):
            scope[_OTEL] = tracer.start(scope, UNMATCHED)  # (None: no SDK)
        return scope, stats, token, request_id

    @staticmethod
    def _leave(scope: Scope) -> None:
        """Leave the span's context here, where it was entered (a streamed response's span ends later,
        with its stream)."""
        traced = scope.get(_OTEL)
        if traced is not None:
            scope[_OTEL] = scope[_POLICIES].tracer.detach(traced)

    def process_exception(self, request: Any, exception: Exception) -> None:
        """The view raised (Django answers 500): the exception goes on the request's span."""
        scope: Scope | None = getattr(request, SCOPE_ATTRIBUTE, None)
        traced = scope.get(_OTEL) if scope is not None else None
        if traced is not None:
            scope[_OTEL] = scope[_POLICIES].tracer.failed(traced, exception)  # type: ignore[index]
        return None

    def __call__(self, request: Any) -> Any:
        if self.is_async:
            return self.__acall__(request)
        policies = current()
        if policies.excluded is not None and policies.excluded(request.path_info):
            return self.get_response(request)
        start = perf_counter()
        scope, stats, token, request_id = self._open(policies, request)
        with policies.lock:
            policies.metrics.active += 1
        response = None
        try:
            response = self.get_response(request)
            state: CacheState | None = scope.get(_CACHE)
            if state is not None:
                policies.cache.finish(state, response)  # type: ignore[union-attr]  # a state implies a cache
            if self._unrouted(policies, scope, stats):  # no view ran (a 404): the limit applies still
                response = self._late(scope, response, self._decide(policies, scope))
        except BaseException:
            self._release(policies, scope, start)
            raise
        finally:
            end_request(token)
        try:  # the span stays current through the metrics and the slow-request log (its finding: an event)
            return self._finish(policies, scope, stats, response, request_id, start)
        finally:
            self._leave(scope)

    async def __acall__(self, request: Any) -> Any:
        policies = current()
        if policies.excluded is not None and policies.excluded(request.path_info):
            return await self.get_response(request)
        start = perf_counter()
        scope, stats, token, request_id = self._open(policies, request)
        policies.metrics.active += 1
        response = None
        try:
            response = await self.get_response(request)
            state: CacheState | None = scope.get(_CACHE)
            if state is not None:
                await policies.cache.afinish(state, response)  # type: ignore[union-attr]  # see __call__
            if self._unrouted(policies, scope, stats):  # see __call__
                response = self._late(scope, response, await self._adecide(policies, scope))
        except BaseException:
            self._release(policies, scope, start)
            raise
        finally:
            end_request(token)
        try:  # the span stays current through the metrics and the slow-request log (its finding: an event)
            return self._finish(policies, scope, stats, response, request_id, start)
        finally:
            self._leave(scope)

    @staticmethod
    def _release(policies: Policies, scope: Scope, start: float) -> None:
        """The view raised out of Django's handler: wake requests waiting on this one, count it."""
        state: CacheState | None = scope.get(_CACHE)
        if state is not None and policies.cache is not None:
            policies.cache.release(state)
        with policies.lock:
            policies.metrics.active -= 1
        traced = scope.pop(_OTEL, None)
        if traced is not None:
            policies.tracer.end(traced, scope, 500, perf_counter() - start)  # type: ignore[union-attr]  # traced: a tracer

    def _finish(
        self,
        policies: Policies,
        scope: Scope,
        stats: RequestStats,
        response: Any,
        request_id: bytes,
        start: float,
    ) -> Any:
        if scope.get(_SKIP):  # perfkit's own monitor views: not traffic, served as they are
            with policies.lock:
                policies.metrics.active -= 1
            traced = scope.pop(_OTEL, None)  # (included under a URLconf `untraced` did not know)
            if traced is not None:
                policies.tracer.end(traced, scope, response.status_code, perf_counter() - start)  # type: ignore[union-attr]
            return response
        if scope.get(SCOPE_KEY) is None:
            self._name_late(policies, scope, stats)
        filters: list[Filter] = []
        for layer in policies.layers:
            f = layer.filter(scope)
            if f is not None:
                filters.append(f)

        def stamp() -> Headers:  # the request id, the rate limit's headers, Server-Timing (time to now)
            return policies.timing.stamp((), request_id, scope.get(_EXTRA) or [], start, stats)

        def done(size: int) -> None:  # a streamed response is counted when its stream ends
            self._record(policies, scope, stats, response.status_code, size, start)

        size = filter_response(response, filters, stamp, done)
        if size is not None:
            self._record(policies, scope, stats, response.status_code, size, start)
        return response

    @staticmethod
    def _name_late(policies: Policies, scope: Scope, stats: RequestStats) -> None:
        """The route of a request no view ran for: not resolved (404), or a middleware below answered
        before the view (a rule may still match its path)."""
        info = policies.rules.info(scope, getattr(scope.get("django.request"), "resolver_match", None))
        if info.template is not None:
            stats.route = info.template
            if scope.get(_OTEL) is not None:
                scope[_OTEL] = policies.tracer.route(scope[_OTEL], info.template)  # type: ignore[union-attr]

    def _unrouted(self, policies: Policies, scope: Scope, stats: RequestStats) -> bool:
        """True when the rate limit is still to be decided: a limiter is on, and `process_view` never ran
        (the URL did not resolve, or a middleware below answered first), so it is named here."""
        if policies.limiter is None or scope.get(SCOPE_KEY) is not None or scope.get(_SKIP):
            return False
        self._name_late(policies, scope, stats)
        return True

    @staticmethod
    def _late(scope: Scope, response: Any, verdict: Any) -> Any:
        """`response`, or the refusal in its place when the request was over its limit (`response` is
        dropped unclosed: its close() would send `request_finished` a second time; Django closes the
        refusal it is given)."""
        headers, refusal = verdict
        if refusal is None:
            scope[_EXTRA] = headers
            return response
        return _refusal(refusal)

    @staticmethod
    def _decide(policies: Policies, scope: Scope) -> Any:
        """The rate limiter's verdict for the request, from sync code."""
        limiter = policies.limiter
        if policies.limiter_in_process:  # no I/O: decided in this thread (a key function runs here)
            with policies.lock:
                return limiter.decide_now(scope) or background.drive(  # type: ignore[union-attr]
                    limiter.decide(scope),  # type: ignore[union-attr]  # (a limiter: the caller checked)
                    "PERFKIT['web']['rate_limit_key']",
                )
        return background.call(limiter.decide(scope))  # type: ignore[union-attr]

    @staticmethod
    async def _adecide(policies: Policies, scope: Scope) -> Any:
        """The rate limiter's verdict for the request, from async code."""
        limiter = policies.limiter
        verdict = limiter.decide_now(scope)  # type: ignore[union-attr]  # (a limiter: the caller checked)
        if verdict is None and policies.limiter_in_process:  # a key function: on this loop
            verdict = await limiter.decide(scope)  # type: ignore[union-attr]
        elif verdict is None:  # Redis: on perfkit's loop, which owns the limiter's connections
            verdict = await background.run(limiter.decide(scope))  # type: ignore[union-attr]
        return verdict

    @staticmethod
    def _record(
        policies: Policies, scope: Scope, stats: RequestStats, status: int, size: int, start: float
    ) -> None:
        elapsed = perf_counter() - start
        with policies.lock:
            policies.metrics.active -= 1
            policies.metrics.record(scope, status, size, elapsed, stats)
        timing = policies.timing
        if timing.slow and elapsed >= timing.slow:
            timing.log_slow(scope, stats, status, elapsed, scope.get("perfkit.request_id", b""))
        traced = scope.pop(_OTEL, None)
        if traced is not None:  # after the metrics and the slow-request log, as in perfkit.web's pipeline
            policies.tracer.end(traced, scope, status, elapsed)  # type: ignore[union-attr]  # see _release

    # -- after Django resolved the URL, before the view -------------------------------------------------
    def _route(self, request: Any, view_func: Any, view_kwargs: dict[str, Any]) -> tuple[Any, Scope, Any]:
        """(policies, scope, the route's RouteInfo); None for the info when there is nothing to do."""
        scope: Scope | None = getattr(request, SCOPE_ATTRIBUTE, None)
        if scope is None:  # the middleware's __call__ did not run for this request (an excluded path)
            return None, {}, None
        if getattr(view_func, "perfkit_monitor", False):
            scope[_SKIP] = True
            return None, scope, None
        policies: Policies = scope[_POLICIES]
        info = policies.rules.info(scope, request.resolver_match)
        scope[_STATS].route = info.template or UNMATCHED
        scope["path_params"] = view_kwargs
        traced = scope.get(_OTEL)
        if traced is not None:
            scope[_OTEL] = policies.tracer.route(traced, info.template)  # type: ignore[union-attr]
        return policies, scope, info

    def process_view(self, request: Any, view_func: Any, view_args: Any, view_kwargs: Any) -> Any:
        policies, scope, info = self._route(request, view_func, view_kwargs)
        if info is None:
            return None
        if policies.limiter is not None:
            headers, refusal = self._decide(policies, scope)
            if refusal is not None:
                return _refusal(refusal)
            scope[_EXTRA] = headers
        cache = policies.cache
        if cache is not None and cache.wanted(scope, info):
            state, response = cache.lookup(scope, info)
            scope[_CACHE] = None if response is not None else state
            if response is not None:
                return response
        return None

    async def aprocess_view(self, request: Any, view_func: Any, view_args: Any, view_kwargs: Any) -> Any:
        policies, scope, info = self._route(request, view_func, view_kwargs)
        if info is None:
            return None
        if policies.limiter is not None:
            headers, refusal = await self._adecide(policies, scope)
            if refusal is not None:
                return _refusal(refusal)
            scope[_EXTRA] = headers
        cache = policies.cache
        if cache is not None and cache.wanted(scope, info):
            state, response = await cache.alookup(scope, info)
            scope[_CACHE] = None if response is not None else state
            if response is not None:
                return response
        return None
