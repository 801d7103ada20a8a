"""Checks on the application's own responses: what a client sees on the wire."""

from __future__ import annotations

import re

from perfkit.doctor.probe import Evidence, Seen
from perfkit.doctor.result import Result

COMPRESS_FROM = 1024  # bytes: smaller bodies gain little from compression (perfkit's budget default)
SIZE_WARN, SIZE_FAIL = 256 * 1024, 1024 * 1024  # bytes on the wire per response
STATIC_MAX_AGE = 86400  # a static asset cached for less than a day is fetched again too often
HSTS_MAX_AGE = 15_552_000  # 180 days, what HSTS preload lists ask as a minimum
_COMPRESSIBLE = ("text/", "application/json", "application/javascript", "application/xml", "image/svg")
_MAX_AGE = re.compile(r"max-age\s*=\s*(\d+)")


def _compressible(seen: Seen) -> bool:
    return seen.headers.get("content-type", "").startswith(_COMPRESSIBLE)


def compression(ev: Evidence) -> Result:
    title = "Compression negotiated"
    big = [p for p in ev.pages if _compressible(p) and len(p.body) >= COMPRESS_FROM and p.status == 200]
    if not big:
        return Result(
            "compression", title, "skip", f"no text response of {COMPRESS_FROM} bytes or more to look at"
        )
    plain = [p for p in big if p.headers.get("content-encoding", "identity") == "identity"]
    if plain:
        where = ", ".join(f"{p.url} ({len(p.body)} B)" for p in plain[:3])
        return Result(
            "compression", title, "fail", f"sent uncompressed to a client accepting gzip, br: {where}",
            "perfkit.instrument(app) compresses by default; check WebConfig(compress=True) and that no proxy "
            "strips Accept-Encoding",
        )  # fmt: skip
    used = sorted({p.headers["content-encoding"] for p in big})
    return Result("compression", title, "pass", f"{len(big)} response(s) compressed ({', '.join(used)})")


def etag(ev: Evidence) -> Result:
    title = "ETag / 304 revalidation"
    if not ev.pages:
        return Result("etag", title, "skip", "no page answered")
    first = ev.pages[0]
    if "etag" not in first.headers:
        return Result(
            "etag", title, "warn", f"{first.url} has no ETag: every revisit downloads the whole body",
            "WebConfig(etag=True) (or Rule(path=..., etag=True)) adds ETags and answers If-None-Match "
            "with 304",
        )  # fmt: skip
    again = ev.revalidated
    if again is not None and again.status == 304:
        return Result("etag", title, "pass", f"ETag {first.headers['etag']} revalidates to 304")
    got = "no answer" if again is None else f"{again.status} with {len(again.body)} bytes"
    return Result(
        "etag", title, "fail", f"If-None-Match with the page's own ETag got {got}, not 304",
        "let perfkit's conditional layer answer (WebConfig(etag=True)); an ETag that changes on every "
        "response (a timestamp in the body) never matches",
    )  # fmt: skip


def static_cache(ev: Evidence) -> Result:
    title = "Cache-Control on static assets"
    fix = (
        'Rule(path="/static/*", cache_control="public, max-age=31536000, immutable") for fingerprinted assets'
    )
    asset = ev.asset
    if asset is None:
        return Result(
            "static_cache", title, "skip", "no static asset linked from the page (give --static PATH)"
        )
    policy = asset.headers.get("cache-control", "")
    if asset.status != 200:
        return Result("static_cache", title, "fail", f"{asset.url} answered {asset.status}", fix)
    if not policy:
        return Result("static_cache", title, "fail", f"{asset.url} has no Cache-Control", fix)
    match = _MAX_AGE.search(policy)
    if "immutable" in policy or (match and int(match.group(1)) >= STATIC_MAX_AGE and "no-" not in policy):
        return Result("static_cache", title, "pass", f"{asset.url}: {policy}")
    return Result("static_cache", title, "warn", f"{asset.url}: {policy!r} caches for less than a day", fix)


def server_timing(ev: Evidence) -> Result:
    title = "Server-Timing present"
    if not ev.pages:
        return Result("server_timing", title, "skip", "no page answered")
    value = ev.pages[0].headers.get("server-timing")
    if value:
        return Result("server_timing", title, "pass", value[:120])
    return Result(
        "server_timing", title, "warn",
        "no Server-Timing header: the browser's devtools cannot show db/cache time",
        "perfkit.instrument(app) adds it (WebConfig(server_timing=True))",
    )  # fmt: skip


def rate_limit_headers(ev: Evidence) -> Result:
    title = "Rate limits send headers"
    for page in ev.pages:
        names = [h for h in page.headers if h in ("ratelimit", "ratelimit-policy", "x-ratelimit-limit")]
        if names:
            return Result("rate_limit_headers", title, "pass", f"{page.url}: {', '.join(names)}")
    return Result(
        "rate_limit_headers", title, "warn",
        "no RateLimit / RateLimit-Policy headers: no limit, or one clients cannot see",
        'WebConfig(rate_limit="100/minute", rate_limit_url="redis://...") limits per client and sends '
        "the IETF headers",
    )  # fmt: skip


def keep_alive(ev: Evidence) -> Result:
    title = "HTTP keep-alive"
    seen = [
        s for s in (*ev.pages, ev.revalidated, ev.asset, ev.live, ev.ready, ev.metrics_open) if s is not None
    ]
    if len(seen) < 2:
        return Result("keep_alive", title, "skip", "fewer than two responses to compare")
    closing = [s.url for s in seen if s.headers.get("connection", "").lower() == "close"]
    streams = {s.stream for s in seen}
    if streams == {0}:
        return Result("keep_alive", title, "skip", "an in-process transport: no connection to judge")
    if not closing and len(streams) == 1 and 0 not in streams:
        return Result("keep_alive", title, "pass", f"{len(seen)} requests over one connection")
    what = (
        f"'Connection: close' from {closing[0]}"
        if closing
        else f"{len(streams)} connections for {len(seen)} requests"
    )
    return Result(
        "keep_alive", title, "fail", what,
        "serve with keep-alive (uvicorn and gunicorn keep it by default; check --timeout-keep-alive "
        "and the proxy)",
    )  # fmt: skip


def response_size(ev: Evidence) -> Result:
    title = "Response sizes"
    if not ev.pages:
        return Result("response_size", title, "skip", "no page answered")
    largest = max(ev.pages, key=lambda p: p.wire_bytes)
    detail = f"largest: {largest.url} {largest.wire_bytes / 1024:.1f} KiB on the wire"
    fix = "paginate or trim large responses (perfkit bench --budget checks them in CI)"
    if largest.wire_bytes > SIZE_FAIL:
        return Result("response_size", title, "fail", detail, fix)
    if largest.wire_bytes > SIZE_WARN:
        return Result("response_size", title, "warn", detail, fix)
    return Result("response_size", title, "pass", detail)


def tls(ev: Evidence, days_left: float | None, verified: bool = True) -> Result:
    title = "TLS certificate"
    if not ev.https:
        return Result("tls", title, "skip", "plain HTTP target")
    if not verified:
        return Result(
            "tls", title, "warn", "not verified (--insecure)", "check without --insecure (--cacert FILE)"
        )
    if days_left is None:
        why = next(iter(ev.errors.values()), "no verified certificate seen")[:200]
        return Result("tls", title, "fail", why, "serve a certificate the clients trust (or give --cacert)")
    if days_left < 14:
        return Result("tls", title, "warn", f"the certificate expires in {days_left:.0f} days", "renew it")
    return Result("tls", title, "pass", f"valid, {days_left:.0f} days left")


def hsts(ev: Evidence) -> Result:
    title = "HSTS"
    if not ev.https:
        return Result("hsts", title, "skip", "plain HTTP target")
    value = ev.pages[0].headers.get("strict-transport-security", "") if ev.pages else ""
    fix = (
        f"send Strict-Transport-Security: max-age={HSTS_MAX_AGE}; includeSubDomains (at the proxy or the app)"
    )
    if not value:
        return Result("hsts", title, "fail", "no Strict-Transport-Security header", fix)
    match = _MAX_AGE.search(value)
    if match is None or int(match.group(1)) < HSTS_MAX_AGE:
        return Result("hsts", title, "warn", f"{value!r}: max-age under 180 days", fix)
    return Result("hsts", title, "pass", value)
