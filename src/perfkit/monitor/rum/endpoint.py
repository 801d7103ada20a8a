"""`POST {prefix}/rum`: the collector browsers send their beacons to.

Open by design (a page cannot hold a secret), so everything else is checked, cheapest first: the
method, the page's `Origin` (its own origin, or one of `RumConfig.origins`; a request without one is
refused), a GCRA rate limit per client address, the content type (`text/plain`, what `sendBeacon`
sends for a string and what needs no CORS preflight, or `application/json`), the size (at most
`max_body`, checked on `Content-Length` and again while reading), then the schema. Every refusal is
a 4xx with the reason and is counted in `rum_beacons_total{outcome=...}`; an accepted beacon answers
204.
"""

from __future__ import annotations

from collections.abc import Callable

from perfkit.errors import InvalidArgumentError
from perfkit.monitor.http import error, respond
from perfkit.monitor.rum.aggregate import RumAggregator
from perfkit.monitor.rum.config import RumConfig
from perfkit.monitor.rum.schema import decode
from perfkit.web.config import RateLimit
from perfkit.web.ratelimit.backend import GcraTable
from perfkit.web.types import Receive, Scope, Send

_TYPES = (b"text/plain", b"application/json")


def device_of(headers: dict[bytes, bytes]) -> str:
    """mobile or desktop from the request: the `Sec-CH-UA-Mobile` hint, else the User-Agent."""
    hint = headers.get(b"sec-ch-ua-mobile")
    if hint is not None:
        return "mobile" if hint.strip() == b"?1" else "desktop"
    agent = headers.get(b"user-agent", b"")
    return "mobile" if b"Mobi" in agent or b"Android" in agent else "desktop"


class RumEndpoint:
    def __init__(self, config: RumConfig, aggregator: RumAggregator, routes: Callable[[str], str]) -> None:
        self.config, self.aggregator, self.routes = config, aggregator, routes
        self.limiter = GcraTable()
        limit = config.rate_limit  # (RumConfig parsed a string already)
        self.limit = limit if isinstance(limit, RateLimit) else RateLimit.parse(limit, "rum.rate_limit")

    def origin_ok(self, scope: Scope, headers: dict[bytes, bytes]) -> bool:
        origin = headers.get(b"origin")
        if origin is None:
            return False
        text = origin.decode("latin-1").strip().lower()
        if text in self.config.allowed_origins:
            return True
        host = headers.get(b"host", b"").decode("latin-1").strip().lower()
        if not host and scope.get("server"):  # no Host header (HTTP/1.0, some test clients): the server's
            name, port = scope["server"][0], scope["server"][1]
            host = str(name).lower() if port in (80, 443, None) else f"{name}:{port}".lower()
        return bool(host) and text.split("://", 1)[-1] == host

    def client(self, scope: Scope, headers: dict[bytes, bytes]) -> str:
        if self.config.trust_forwarded:
            forwarded = headers.get(b"x-forwarded-for")
            if forwarded:
                return forwarded.split(b",")[0].strip().decode("latin-1")
        client = scope.get("client")
        return str(client[0]) if client else "-"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope["headers"])  # (one pass over the headers for every check below)
        refused = await self.check(scope, headers, send)
        if refused is not None:
            self.aggregator.count(refused)
            return
        body = await self.body(scope, receive)
        if body is None:
            self.aggregator.count("too_large")
            await error(send, 413, f"beacon: larger than {self.config.max_body} bytes")
            return
        try:
            beacon = decode(body)
        except InvalidArgumentError as exc:
            self.aggregator.count("invalid")
            await error(send, 400, str(exc))
            return
        self.aggregator.add(beacon, self.routes(beacon.url), beacon.device or device_of(headers))
        await respond(send, 204, b"", "text/plain", [(b"cache-control", b"no-store")])

    async def check(self, scope: Scope, headers: dict[bytes, bytes], send: Send) -> str | None:
        """None when the request may be read; else the refusal's outcome, answered already."""
        if scope["method"] != "POST":
            await error(send, 405, "the RUM collector takes POST")
            return "bad_method"
        if not self.origin_ok(scope, headers):
            await error(send, 403, "origin: only this site's pages (or RumConfig.origins) may post")
            return "refused_origin"
        decision = self.limiter.hit_sync(self.client(scope, headers), self.limit)
        if not decision.allowed:
            retry = b"%d" % max(1, round(decision.retry_after + 0.5))
            await respond(
                send, 429, b'{"error":"rate limit exceeded"}', "application/json", [(b"retry-after", retry)]
            )
            return "rate_limited"
        ctype = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if ctype not in _TYPES:
            await error(send, 415, "content-type: send text/plain (or application/json)")
            return "bad_type"
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.config.max_body):
            await error(send, 413, f"beacon: larger than {self.config.max_body} bytes")
            return "too_large"
        return None

    async def body(self, scope: Scope, receive: Receive) -> bytes | None:
        """The request body, or None as soon as it exceeds `max_body`."""
        chunks, size, limit = [], 0, self.config.max_body
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return b""
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)
