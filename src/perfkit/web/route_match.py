"""Find the route a request will reach, choosing it the way Starlette's and FastAPI's routers do.

Each route is asked its own `matches()`, in order: the first full match wins, else the first partial one
(a known path with another method: the route answers 405). `Mount` and `Host` routes are entered with the
child scope they return, and mount paths are joined into the template (`/api` + `/items/{id}`). When
nothing matches and the router redirects slashes, the answer is the route the redirect leads to.

FastAPI >= 0.137 keeps `include_router()`'s routers as a tree in `router.routes` instead of copying their
routes. Its public `fastapi.routing.iter_route_contexts()` (0.137.2+; before that each included router's
`effective_route_contexts()`) lists the routes with the include prefixes applied, and those are matched
with FastAPI's own `matches()`. Older FastAPI and plain Starlette have flat route lists: used as they are.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from perfkit.web.types import Scope


@dataclass(frozen=True, slots=True)
class Found:
    """The route a request reaches: its full template, its name, and the endpoint the router will put in
    `scope["endpoint"]` when it runs it (None where nothing will)."""

    template: str | None
    name: str | None
    endpoint: Any


def find_router(app: Any) -> Any:
    """The Starlette router behind `app` (Starlette, FastAPI, Router, or wrapped middleware)."""
    for _ in range(50):
        if app is None:
            return None
        if hasattr(app, "routes") and hasattr(app, "url_path_for"):
            return getattr(app, "router", app)
        app = getattr(app, "app", None)
    return None


def flat_routes(routes: Iterable[Any]) -> list[Any]:
    """A router's `routes` as a list of matchable routes, FastAPI's included routers flattened."""
    fastapi_routing = sys.modules.get("fastapi.routing")  # a FastAPI app has imported it already
    contexts = getattr(fastapi_routing, "iter_route_contexts", None)
    if contexts is not None:
        return list(contexts(list(routes)))
    out: list[Any] = []
    for route in routes:
        included = getattr(route, "effective_route_contexts", None)  # FastAPI 0.137.0 and 0.137.1
        if included is None:
            out.append(route)
        else:
            out.extend(getattr(context, "starlette_route", None) or context for context in included())
    return out


class RouteWalk:
    """One resolution. `saw_host` tells whether a `Host` route was asked, i.e. whether the answer can
    depend on the Host header as well as on the method and path."""

    def __init__(self) -> None:
        from starlette.routing import Match

        self.full, self.none = Match.FULL, Match.NONE
        self.saw_host = False

    def router(self, router: Any, scope: Scope) -> Found | None:
        """What `router` does with `scope`; None when it answers 404 itself."""
        routes = flat_routes(getattr(router, "routes", ()))
        found = self._routes(routes, scope)
        if found is None and getattr(router, "redirect_slashes", False) and scope.get("type") == "http":
            found = self._redirect(routes, scope)
        return found

    def _routes(self, routes: list[Any], scope: Scope) -> Found | None:
        partial: tuple[Any, Scope] | None = None
        for route in routes:
            if not self.saw_host and hasattr(route, "host"):
                self.saw_host = True
            try:
                match, child = route.matches(scope)
            except Exception:  # noqa: S112  # a custom route that cannot match this scope is not a match
                continue
            if match is self.full:
                return self._enter(route, scope, child)
            if match is not self.none and partial is None:
                partial = (route, child)
        return self._enter(partial[0], scope, partial[1]) if partial is not None else None

    def _enter(self, route: Any, scope: Scope, child: Scope) -> Found:
        """The answer once `route` matched: itself, or what the router inside a Mount or Host does."""
        endpoint = child.get("endpoint", scope.get("endpoint"))
        if not hasattr(route, "routes"):  # Route, WebSocketRoute, FastAPI's routes: a leaf
            return Found(getattr(route, "path", None), getattr(route, "name", None), endpoint)
        path = getattr(route, "path", None)  # a Mount's path ("" for "/"); a Host has none
        prefix = path or ""
        inner = find_router(getattr(route, "app", None))
        if inner is None:  # an app without routes (StaticFiles, any ASGI app): the mount is the route
            return Found(prefix + "/*" if path is not None else None, getattr(route, "name", None), endpoint)
        found = self.router(inner, {**scope, **child})
        if found is None:  # the inner router answers 404
            return Found(None, None, endpoint)
        template = prefix + found.template if found.template is not None else None
        return Found(template, found.name, found.endpoint)

    def _redirect(self, routes: list[Any], scope: Scope) -> Found | None:
        """Starlette's `redirect_slashes`: the path with its trailing slash toggled, if a route takes it.
        The redirect runs no endpoint, so it has the target's template but no name."""
        path: str = scope.get("path", "")
        root: str = scope.get("root_path", "")
        if (path[len(root) :] if root and path.startswith(root) else path) == "/":
            return None
        other = {**scope, "path": path.rstrip("/") if path.endswith("/") else path + "/"}
        for route in routes:
            try:
                match, child = route.matches(other)
            except Exception:  # noqa: S112  # as in `_routes`
                continue
            if match is not self.none:
                return Found(self._enter(route, other, child).template, None, scope.get("endpoint"))
        return None
