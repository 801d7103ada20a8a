"""Where a loader keeps its per-request state: a `Scope`, found through a context variable.

A scope is what makes a module-level `Loader` safe to share: each request (or tenant, or job) gets its
own cache of loaded keys and its own pending batch, so no value loaded for one request is ever served
to another (the cross-request cache leaks of graphene-sqlalchemy#395 and backend.ai#12020). A load
finds its scope in this order:

1. the innermost `with perfkit.loader.scope():` (or `LoaderScopeMiddleware`, one per ASGI request);
2. the request perfkit is already tracking in this context (`perfkit.metrics.start_request`: perfkit's
   web middleware, `perfkit.db.track()`), which gets a scope on first use;
3. otherwise `NoLoaderScopeError` (or, for `Loader(..., scoped=False)`, the loader's own scope).

Tasks started inside a scope (asyncio.gather, TaskGroup) inherit it, so their loads batch together.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar, Token
from typing import Any

from perfkit.metrics import current_request

__all__ = ["LoaderScopeMiddleware", "Scope", "current_scope", "explicit_scope", "scope"]


class Scope:
    """One request's loader state: per loader, its cache and pending keys (`states`), and the
    `after=` dependency edges between (loader, key) nodes, for cycle checks (`edges`)."""

    __slots__ = ("__weakref__", "edges", "states")

    def __init__(self) -> None:
        self.states: dict[Any, Any] = {}  # loader -> its state in this scope
        self.edges: dict[tuple[int, Any], set[tuple[int, Any]]] = {}

    def reaches(self, start: tuple[int, Any], goal: tuple[int, Any]) -> list[tuple[int, Any]] | None:
        """The path of `after=` edges from `start` to `goal`, or None."""
        stack: list[tuple[tuple[int, Any], list[tuple[int, Any]]]] = [(start, [start])]
        seen = {start}
        while stack:
            node, path = stack.pop()
            if node == goal:
                return path
            for nxt in self.edges.get(node, ()):
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*path, nxt]))
        return None


_explicit: ContextVar[Scope | None] = ContextVar("perfkit_loader_scope", default=None)


#: `explicit_scope()`: the innermost `scope()` block's scope, or None (the loader's fast path, a C call).
explicit_scope: Callable[[], Scope | None] = _explicit.get


def current_scope() -> Scope | None:
    """The scope loads in this context use, or None when there is none (see the module docstring)."""
    found = _explicit.get()
    if found is not None:
        return found
    request = current_request()
    if request is None:
        return None
    if request.loaders is None:
        request.loaders = Scope()
    held: Scope = request.loaders
    return held


class scope:  # used like a function: `with perfkit.loader.scope():`
    """A fresh loader scope for the enclosed block (sync `with` or `async with`); nested scopes do not
    share state with the outer one."""

    def __init__(self) -> None:
        self.scope = Scope()
        self._token: Token[Scope | None] | None = None

    def __enter__(self) -> Scope:
        self._token = _explicit.set(self.scope)
        return self.scope

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            _explicit.reset(self._token)
            self._token = None

    async def __aenter__(self) -> Scope:
        return self.__enter__()

    async def __aexit__(self, *exc: object) -> None:
        self.__exit__()


class LoaderScopeMiddleware:
    """Pure ASGI middleware: one loader scope per HTTP or WebSocket request; lifespan passes through."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope_: dict[str, Any], receive: Any, send: Any) -> None:
        if scope_["type"] not in ("http", "websocket"):
            await self.app(scope_, receive, send)
            return
        with scope():
            await self.app(scope_, receive, send)
