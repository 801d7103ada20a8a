"""Cache-Control per route: the rule's policy is added when the app did not set one itself.

Examples: `public, max-age=31536000, immutable` for fingerprinted assets, `private, no-cache` for user
data. Only successful GET/HEAD responses get the policy; errors and other methods are left alone.
"""

from __future__ import annotations

from perfkit.web.headers import get
from perfkit.web.layer import Filter, SendLayer
from perfkit.web.types import Message, Scope


class CacheControlMiddleware(SendLayer):
    def filter(self, scope: Scope) -> Filter | None:
        if scope["method"] not in ("GET", "HEAD"):
            return None
        rule = self.resolver.resolve(scope).rule
        if rule is None or rule.cache_control is None:
            return None
        policy = rule.cache_control.encode("latin-1")

        def add_policy(message: Message) -> tuple[Message]:
            if message["type"] == "http.response.start" and 200 <= message["status"] < 400:
                headers = list(message.get("headers", ()))
                if get(headers, b"cache-control") is None:
                    headers.append((b"cache-control", policy))
                    return ({**message, "headers": headers},)
            return (message,)

        return add_policy
