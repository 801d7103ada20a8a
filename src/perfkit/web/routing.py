"""Resolve a request to its route (template and name) and its config rule, once per request.

Rate limiting and the response cache must know the route before the app runs, so perfkit finds it the
way the app's router will (`route_match`), caches the answer per (method, path) in a bounded table (plus
the Host header when the app has `Host` routes), and stores it in the scope for every layer of the stack.
After the app ran, `check()` compares that answer with the endpoint the router actually put in the
scope and warns once per route when they differ (e.g. a middleware inside perfkit rewrote the path).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from perfkit.web.config import Rule, WebConfig
from perfkit.web.headers import header
from perfkit.web.route_match import RouteWalk, find_router
from perfkit.web.types import Scope

__all__ = ["SCOPE_KEY", "UNMATCHED", "RouteInfo", "RouteResolver", "find_router"]

log = logging.getLogger("perfkit.web")
SCOPE_KEY = "perfkit.route"
UNMATCHED = "<unmatched>"
_MISSING = object()


@dataclass(frozen=True, slots=True)
class RouteInfo:
    template: str | None
    name: str | None
    rule: Rule | None
    endpoint: Any = None  # what the router will run (`scope["endpoint"]` after matching), None for none
    # what each part that uses this route worked out for it, once (the pipeline's per-route plan): kept
    # here so a request finds it with the resolution itself, and it goes when the route leaves the table
    plans: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)


class RouteResolver:
    """Maps (method, path) to a `RouteInfo`, remembering up to `size` recent paths."""

    def __init__(self, app: Any, config: WebConfig, size: int = 4096) -> None:
        self.router = find_router(app)
        self.config = config
        self.size = size
        self.by_host = False  # set once a resolution asked a Host route: the Host header joins the key
        self._table: dict[tuple[str, str, bytes | None], RouteInfo] = {}
        self._warned: set[tuple[str, str, str]] = set()

    def resolve(self, scope: Scope) -> RouteInfo:
        info: RouteInfo | None = scope.get(SCOPE_KEY)
        if info is not None:
            return info
        key = (
            scope.get("method", ""),
            scope.get("path", ""),
            header(scope, b"host") if self.by_host else None,
        )
        info = self._table.get(key)
        if info is None:
            info = self._compute(scope)
            if len(self._table) >= self.size:
                self._table.pop(next(iter(self._table)))
            self._table[key] = info
        scope[SCOPE_KEY] = info
        return info

    def _compute(self, scope: Scope) -> RouteInfo:
        template = name = endpoint = None
        if self.router is not None and scope.get("type") == "http":
            walk = RouteWalk()
            found = walk.router(self.router, dict(scope))  # a copy: matching must leave the scope alone
            if walk.saw_host and not self.by_host:
                self.by_host = True
                self._table.clear()
            if found is not None:
                template, name, endpoint = found.template, found.name, found.endpoint
        rule = self.config.match(scope.get("method", ""), scope.get("path", ""), name)
        if template is None and rule is not None and rule.path is not None:
            template = rule.path
        return RouteInfo(template, name, rule, endpoint)

    def template(self, scope: Scope) -> str:
        """The route template for metrics: never the raw path, so cardinality stays bounded."""
        info = self.resolve(scope)
        if info.template is not None:
            return info.template
        if self.router is None:  # no router perfkit can read: what a framework left in the scope, if any
            path = getattr(scope.get("route"), "path", None)
            if isinstance(path, str):
                return path
        if self.config.route_name is not None:
            return self.config.route_name(dict(scope))
        return UNMATCHED

    def check(self, scope: Scope) -> bool:
        """After the app ran: False (and a warning, once per route) when the router ran another endpoint
        than the one perfkit resolved, so rules and rate limits were chosen for another route."""
        ran = scope.get("endpoint", _MISSING)
        info: RouteInfo | None = scope.get(SCOPE_KEY)
        if ran is _MISSING or info is None or ran is info.endpoint or self.router is None:
            return True  # nothing routed (or a middleware copied the scope): nothing to compare
        method, resolved = scope.get("method", ""), info.template or UNMATCHED
        key = (method, resolved, _name(ran))
        if key not in self._warned and len(self._warned) < 256:
            self._warned.add(key)
            log.warning(
                "perfkit resolved %s %s to route %s (endpoint %s) but the app ran endpoint %s: rules, "
                "rate limits and metrics use perfkit's answer (does a middleware inside perfkit's stack "
                "change the path, or a custom route type not answer matches()?)",
                method, scope.get("path"), resolved, _name(info.endpoint), key[2],
            )  # fmt: skip
        return False


def _name(endpoint: Any) -> str:
    if endpoint is None:
        return "none"
    return str(getattr(endpoint, "__qualname__", None) or type(endpoint).__qualname__)
