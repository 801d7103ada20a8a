"""Cache-Control per route: the rule's policy is added when the app did not set one itself.

Examples: `public, max-age=31536000, immutable` for fingerprinted assets, `private, no-cache` for user
data. Only successful GET/HEAD responses get the policy; errors and other methods are left alone.
"""

from __future__ import annotations

from collections.abc import Sequence

from perfkit.web.headers import get
from perfkit.web.layer import SendLayer
from perfkit.web.pipeline import Filter
from perfkit.web.types import Message, Scope


class CacheControlMiddleware(SendLayer):
    def filter(self, scope: Scope) -> Filter | None:
        if scope["method"] not in ("GET", "HEAD"):
            return None
        rule = self.resolver.resolve(scope).rule
        if rule is None or rule.cache_control is None:
            return None
        policy = rule.cache_control.encode("latin-1")

        def add_policy(start: Message | None, message: Message) -> Sequence[Message]:
            if start is None:
                return (message,)
            if 200 <= start["status"] < 400:
                headers = list(start.get("headers", ()))
                if get(headers, b"cache-control") is None:
                    headers.append((b"cache-control", policy))
                    return ({**start, "headers": headers}, message)
            return (start, message)

        return add_policy
