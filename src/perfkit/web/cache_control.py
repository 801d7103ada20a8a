"""Cache-Control per route: the rule's policy is added when the app did not set one itself.

Examples: `public, max-age=31536000, immutable` for fingerprinted assets, `private, no-cache` for user
data. Only successful GET/HEAD responses get the policy; errors and other methods are left alone.
"""

from __future__ import annotations

from perfkit.web.headers import get
from perfkit.web.layer import SendLayer
from perfkit.web.types import Message, Scope, Send


class CacheControlMiddleware(SendLayer):
    def wrap(self, scope: Scope, send: Send) -> Send:
        if scope["method"] not in ("GET", "HEAD"):
            return send
        rule = self.resolver.resolve(scope).rule
        if rule is None or rule.cache_control is None:
            return send
        policy = rule.cache_control.encode("latin-1")

        async def send_policy(message: Message) -> None:
            if message["type"] == "http.response.start" and 200 <= message["status"] < 400:
                headers = list(message.get("headers", ()))
                if get(headers, b"cache-control") is None:
                    headers.append((b"cache-control", policy))
                    message = {**message, "headers": headers}
            await send(message)

        return send_policy
