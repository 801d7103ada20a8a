"""What `perfkit doctor` looks at, fetched once: the app's own responses and the monitor's endpoints.

`Evidence` holds every response the checks read, so the checks themselves are plain functions of it
(no I/O, easy to test). Requests go through one httpx client with at most one connection, which also
tells whether the server kept the connection alive between requests.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

from perfkit.errors import MissingDependencyError

ACCEPT = "gzip, br"
READY_RUNS = 3
_ASSET = re.compile(
    r"""(?:src|href)\s*=\s*["']([^"'#?]+\.(?:js|css|svg|png|jpg|webp|woff2?))(?:\?[^"']*)?["']"""
)


def httpx_module() -> Any:
    try:
        import httpx
    except ModuleNotFoundError as exc:
        raise MissingDependencyError("perfkit doctor", "httpx", "cli") from exc
    return httpx


@dataclass
class Seen:
    """One response: status, headers (lower-case names), bytes on the wire, body as decoded, seconds."""

    url: str
    status: int
    headers: dict[str, str]
    wire_bytes: int
    body: bytes
    seconds: float
    stream: int  # id of the connection it came over (the same id twice: keep-alive worked)

    def json(self) -> Any:
        import json

        try:
            return json.loads(self.body)
        except ValueError:
            return None


@dataclass
class Evidence:
    base: str
    prefix: str
    token_given: bool
    pages: list[Seen] = field(default_factory=list)
    revalidated: Seen | None = None  # the first page again with If-None-Match
    asset: Seen | None = None
    live: Seen | None = None
    ready: Seen | None = None
    ready_again: list[Seen] = field(default_factory=list)  # more readiness runs: latency is their best
    metrics_open: Seen | None = None  # /metrics without the token
    metrics: Seen | None = None  # with it
    report: Seen | None = None
    errors: dict[str, str] = field(default_factory=dict)  # what could not be fetched, and why

    @property
    def https(self) -> bool:
        return self.base.startswith("https://")


async def fetch(client: Any, url: str, headers: dict[str, str] | None = None) -> Seen:
    start = time.perf_counter()
    response = await client.get(url, headers=headers or {})
    body = await response.aread()
    stream = response.extensions.get("network_stream")
    return Seen(
        url=url,
        status=response.status_code,
        headers={k.lower(): v for k, v in response.headers.items()},
        wire_bytes=response.num_bytes_downloaded,
        body=body,
        seconds=time.perf_counter() - start,
        stream=id(stream) if stream is not None else 0,
    )


def find_asset(base: str, page: Seen) -> str | None:
    """The first same-origin script, stylesheet, image or font an HTML page links to."""
    if not page.headers.get("content-type", "").startswith("text/html"):
        return None
    origin = urlsplit(base).netloc
    for ref in _ASSET.findall(page.body.decode("utf-8", "replace")):
        url: str = urljoin(page.url, str(ref))
        if urlsplit(url).netloc == origin:
            return url
    return None


async def gather(
    client: Any, base: str, *, paths: list[str], prefix: str, token: str | None, static: str | None
) -> Evidence:
    """Fetch everything the checks read; a request that fails is noted, not raised."""
    ev = Evidence(base=base.rstrip("/"), prefix=prefix, token_given=bool(token))
    auth = {"authorization": f"Bearer {token}"} if token else {}
    httpx = httpx_module()

    async def get(name: str, url: str, headers: dict[str, str] | None = None) -> Seen | None:
        try:
            return await fetch(client, url, headers)
        except httpx.HTTPError as exc:
            ev.errors[name] = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            return None

    for path in paths:
        seen = await get(path, ev.base + path, {"accept-encoding": ACCEPT})
        if seen is not None:
            ev.pages.append(seen)
    first = ev.pages[0] if ev.pages else None
    if first is not None and "etag" in first.headers:
        ev.revalidated = await get(
            "revalidate", first.url, {"accept-encoding": ACCEPT, "if-none-match": first.headers["etag"]}
        )
    asset = ev.base + static if static else (find_asset(ev.base, first) if first else None)
    if asset:
        ev.asset = await get("asset", asset, {"accept-encoding": ACCEPT})
    monitor = ev.base + prefix
    ev.live = await get("health", monitor + "/health")
    ev.ready = await get("ready", monitor + "/health/ready", auth)
    for _ in range(READY_RUNS - 1):  # the first run may open the connections: a latency is the best run
        if (
            ev.ready is not None
            and ev.ready.status != 401
            and (again := await get("ready", monitor + "/health/ready", auth))
        ):
            ev.ready_again.append(again)
    ev.metrics_open = await get("metrics", monitor + "/metrics")
    if token:
        ev.metrics = await get("metrics", monitor + "/metrics", auth)
        ev.report = await get("report", monitor + "/report", auth)
    elif ev.metrics_open is not None and ev.metrics_open.status == 200:  # an open monitor
        ev.metrics = ev.metrics_open
        ev.report = await get("report", monitor + "/report")
    return ev
