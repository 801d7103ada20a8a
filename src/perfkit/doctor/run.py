"""`diagnose()`: gather the evidence from a deployment and run every check on it, in a fixed order."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ssl
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from perfkit.doctor import http_checks as web
from perfkit.doctor import monitor_checks as mon
from perfkit.doctor.probe import Evidence, gather, httpx_module
from perfkit.doctor.result import Checklist, Result
from perfkit.errors import ConfigurationError

TIMEOUT = 10.0
CHECKS: tuple[Callable[[Evidence], Result], ...] = (
    web.compression, web.etag, web.static_cache, web.server_timing,
    mon.health_live, mon.health_ready, mon.metrics_protected, web.rate_limit_headers,
    web.keep_alive, web.response_size, mon.slow_routes, mon.n_plus_one, mon.db_pool,
    mon.job_workers, mon.queues_draining, mon.redis_latency, mon.database_latency,
    mon.cache_hit_ratio, mon.error_rate, mon.latency_budget, web.hsts,
)  # fmt: skip


def tls_context(verify: bool | str) -> ssl.SSLContext | bool:
    """What httpx's `verify` and the handshake take: the system's CAs, a CA bundle file, or none."""
    if isinstance(verify, str):
        try:
            return ssl.create_default_context(cafile=verify)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigurationError("cacert", f"cannot load CA bundle {verify!r}: {exc}") from exc
    return ssl.create_default_context() if verify else False


async def certificate_days(url: str, context: ssl.SSLContext | bool) -> float | None:
    """Days until the server's certificate expires (None if no verified certificate was seen)."""
    parts = urlsplit(url)
    if not isinstance(context, ssl.SSLContext):
        return None
    try:
        async with asyncio.timeout(TIMEOUT):
            _, writer = await asyncio.open_connection(parts.hostname, parts.port or 443, ssl=context)
    except (OSError, TimeoutError, ssl.SSLError):
        return None
    cert = writer.get_extra_info("peercert") or {}
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()
    if "notAfter" not in cert:
        return None
    expires = dt.datetime.fromtimestamp(ssl.cert_time_to_seconds(cert["notAfter"]), dt.UTC)
    return (expires - dt.datetime.now(dt.UTC)).total_seconds() / 86400


def check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigurationError("url", f"{url!r} is not an http:// or https:// URL")
    return url.rstrip("/")


async def diagnose(
    url: str,
    *,
    paths: list[str] | None = None,
    prefix: str = "/perf",
    token: str | None = None,
    static: str | None = None,
    verify: bool | str = True,
    client: Any = None,
) -> Checklist:
    """Run every check against the deployment at `url`. `verify`: False, or a CA bundle file for a
    private CA; `client`: an httpx.AsyncClient to use instead of doctor's own."""
    base = check_url(url)
    for path in [*(paths or []), prefix, static or "/"]:
        if not path.startswith("/"):
            raise ConfigurationError("path", f"{path!r} must start with '/'")
    httpx = httpx_module()
    context = tls_context(verify)
    own = client is None
    if own:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)  # one: keep-alive is visible
        client = httpx.AsyncClient(timeout=TIMEOUT, limits=limits, verify=context, follow_redirects=False)
    try:
        ev = await gather(client, base, paths=paths or ["/"], prefix=prefix, token=token, static=static)
    finally:
        if own:
            await client.aclose()
    days = await certificate_days(base, context) if ev.https else None
    checklist = Checklist(target=base)
    checklist.results = [check(ev) for check in CHECKS[:-1]]
    checklist.results += [web.tls(ev, days, verified=context is not False), CHECKS[-1](ev)]
    return checklist
