"""Resolve a request to its route (template and name) and its config rule, once per request.

Rate limiting and the response cache must know the route before the app runs, so perfkit matches the
path against the app's Starlette router itself (and against the rule patterns), caches the answer per
(method, path) in a bounded table, and stores it in the scope for every layer of the stack.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from perfkit.web._asgi import Scope
from perfkit.web.config import Rule, WebConfig

SCOPE_KEY = "perfkit.route"
UNMATCHED = "<unmatched>"


@dataclass(frozen=True, slots=True)
class RouteInfo:
    template: str | None
    name: str | None
    rule: Rule | None


def find_router(app: Any) -> Any:
    """The Starlette router behind `app` (Starlette, FastAPI, Router, or wrapped middleware)."""
    for _ in range(50):
        if app is None:
            return None
        if hasattr(app, "routes") and hasattr(app, "url_path_for"):
            return getattr(app, "router", app)
        app = getattr(app, "app", None)
    return None


def _match(routes: Any, scope: Scope) -> tuple[str | None, str | None]:
    from starlette.routing import Match, Mount

    for route in routes:
        try:
            match, child = route.matches(scope)
        except Exception:  # noqa: S112  # a custom route that cannot match this scope is not a match
            continue
        if match is not Match.FULL:
            continue
        if isinstance(route, Mount):
            inner = {**scope, **child}
            template, name = _match(route.routes, inner)
            prefix = route.path
            return (prefix + template if template else prefix + "/*"), name
        return getattr(route, "path", None), getattr(route, "name", None)
    return None, None


class RouteResolver:
    """Maps (method, path) to a `RouteInfo`, remembering up to `size` recent paths."""

    def __init__(self, app: Any, config: WebConfig, size: int = 4096) -> None:
        self.router = find_router(app)
        self.config = config
        self.size = size
        self._table: dict[tuple[str, str], RouteInfo] = {}

    def resolve(self, scope: Scope) -> RouteInfo:
        info: RouteInfo | None = scope.get(SCOPE_KEY)
        if info is not None:
            return info
        key = (scope.get("method", ""), scope.get("path", ""))
        info = self._table.get(key)
        if info is None:
            info = self._compute(scope)
            if len(self._table) >= self.size:
                self._table.pop(next(iter(self._table)))
            self._table[key] = info
        scope[SCOPE_KEY] = info
        return info

    def _compute(self, scope: Scope) -> RouteInfo:
        template = name = None
        if self.router is not None and scope.get("type") == "http":
            template, name = _match(self.router.routes, scope)
        rule = self.config.match(scope.get("method", ""), scope.get("path", ""), name)
        if template is None and rule is not None and rule.path is not None:
            template = rule.path
        return RouteInfo(template, name, rule)

    def template(self, scope: Scope) -> str:
        """The route template for metrics: never the raw path, so cardinality stays bounded."""
        info = self.resolve(scope)
        if info.template is not None:
            return info.template
        route = scope.get("route")
        path = getattr(route, "path", None)
        if isinstance(path, str):
            return path
        if self.config.route_name is not None:
            return self.config.route_name(dict(scope))
        return UNMATCHED
