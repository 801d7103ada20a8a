"""The route a beacon's page belongs to: the app's own route template, found by perfkit's resolver.

A beacon names its page by URL; metrics are kept per route template (`/products/{id}`), never per raw
path, so a page whose path matches no route of the app is counted under "other".
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from perfkit.web.config import WebConfig
from perfkit.web.routing import UNMATCHED, RouteResolver, find_router

OTHER = "other"


class PageRoutes:
    """`routes(url)` -> the template of the app route a GET of that URL's path reaches, or "other"."""

    def __init__(self, app: Any = None) -> None:
        self.resolver = RouteResolver(app, WebConfig()) if find_router(app) is not None else None

    def __call__(self, url: str) -> str:
        if self.resolver is None:
            return OTHER
        try:
            path = urlsplit(url).path or "/"
        except ValueError:  # "http://[" and friends
            return OTHER
        scope = {"type": "http", "method": "GET", "path": path, "root_path": "", "headers": []}
        template = self.resolver.template(scope)
        return OTHER if template == UNMATCHED else template
