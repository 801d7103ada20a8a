"""PerfkitMiddleware under Django's sync test client (the WSGI path): timing, ids, metrics, send layers,
rate limits, and hostile input."""

from __future__ import annotations

import gzip
from typing import Any

import brotli
import pytest
import zstandard

from perfkit.django.middleware import PerfkitMiddleware
from tests.django import web_views
from tests.django.web_support import configure, count

pytestmark = [pytest.mark.urls("tests.django.web_urls")]


@pytest.fixture
def perfkit(settings: Any) -> Any:
    """Django's settings with perfkit's middleware installed (`web_support.configure`)."""
    return configure(settings)


def test_server_timing_and_request_id(client: Any, perfkit: Any) -> None:
    """A response gets Server-Timing (total, app, db, cache) and a new X-Request-ID."""
    response = client.get("/hello/")
    assert response.status_code == 200
    assert response.content == b"hello"
    timing = response["Server-Timing"]
    assert timing.startswith("total;dur=") and "app;dur=" in timing and '"0 queries"' in timing
    assert "cache;dur=" in timing
    assert len(response["X-Request-ID"]) > 8
    assert client.get("/hello/")["X-Request-ID"] != response["X-Request-ID"]


@pytest.mark.parametrize(
    ("sent", "kept"),
    [("abc-123.X:y_z", True), ("x" * 129, False), ("evil\r\nset-cookie: a=b", False), ("a b", False),
     ("", False), ("é", False)],
)  # fmt: skip
def test_incoming_request_id(client: Any, perfkit: Any, sent: str, kept: bool) -> None:
    """A valid incoming X-Request-ID is echoed; a huge or unsafe one is replaced by a new id."""
    response = client.get("/hello/", headers={"X-Request-ID": sent})
    assert response.status_code == 200
    assert (response["X-Request-ID"] == sent) is kept
    assert "\n" not in response["X-Request-ID"] and len(response["X-Request-ID"]) <= 128


def test_db_queries_counted_from_the_request_stats(client: Any, perfkit: Any, db: Any) -> None:
    """perfkit.django.db's execute hook adds the view's statements to `current_request()`: the count
    shows in Server-Timing and in `http_db_queries_total` for the URL pattern."""
    before = count("http_db_queries_total", ("GET", "/orgs/"))
    response = client.get("/orgs/")
    assert response.status_code == 200
    assert '"2 queries"' in response["Server-Timing"]
    assert count("http_db_queries_total", ("GET", "/orgs/")) == before + 2


def test_metrics_per_url_pattern_never_the_raw_path(client: Any, perfkit: Any) -> None:
    """Requests are counted under the URL pattern (`resolver_match.route`) and method; a URL that does
    not resolve under the fixed `<unmatched>` label; an include()d pattern with its prefix."""
    labels = ("GET", "/tickets/<int:pk>/", "2xx")
    before = count("http_request_duration_seconds", labels)
    for pk in (5, 6, 7):
        assert client.get(f"/tickets/{pk}/").status_code == 200
    assert count("http_request_duration_seconds", labels) == before + 3
    assert count("http_request_duration_seconds", ("GET", "/tickets/5/", "2xx")) == 0
    unmatched = count("http_request_duration_seconds", ("GET", "<unmatched>", "4xx"))
    assert client.get("/no/such/page/12345/").status_code == 404
    assert count("http_request_duration_seconds", ("GET", "<unmatched>", "4xx")) == unmatched + 1
    included = count("http_request_duration_seconds", ("GET", "/api/items/<int:pk>/", "2xx"))
    client.get("/api/items/3/")
    assert count("http_request_duration_seconds", ("GET", "/api/items/<int:pk>/", "2xx")) == included + 1


def test_a_failing_view_is_a_5xx(client: Any, perfkit: Any) -> None:
    """A view that raises is answered 500 by Django and counted as a 5xx with Server-Timing."""
    client.raise_request_exception = False
    before = count("http_request_duration_seconds", ("GET", "/fail/", "5xx"))
    response = client.get("/fail/")
    assert response.status_code == 500
    assert "Server-Timing" in response
    assert count("http_request_duration_seconds", ("GET", "/fail/", "5xx")) == before + 1


@pytest.mark.parametrize(
    ("coding", "decode"),
    [("gzip", gzip.decompress), ("br", brotli.decompress),
     ("zstd", lambda b: zstandard.ZstdDecompressor().decompressobj().decompress(b))],
)  # fmt: skip
def test_compression(client: Any, perfkit: Any, coding: str, decode: Any) -> None:
    """A large body is compressed with the negotiated coding and decodes to the view's bytes."""
    response = client.get("/big/", headers={"Accept-Encoding": coding})
    assert response["Content-Encoding"] == coding
    assert "Accept-Encoding" in response["Vary"]
    assert decode(response.content) == web_views.BIG
    assert int(response["Content-Length"]) == len(response.content) < len(web_views.BIG)


@pytest.mark.parametrize("junk", ["*;q=abc", ";;;,,,", "gzip;q=2", "x" * 5000, "identity", "gzip;q=0"])
def test_accept_encoding_junk_is_identity(client: Any, perfkit: Any, junk: str) -> None:
    """Accept-Encoding junk (bad q-values, huge, refusals) gets the identity body, never an error."""
    response = client.get("/big/", headers={"Accept-Encoding": junk})
    assert response.status_code == 200
    assert not response.has_header("Content-Encoding")
    assert response.content == web_views.BIG


def test_small_bodies_are_not_compressed(client: Any, perfkit: Any) -> None:
    """A body under compress_min_size is sent as it is."""
    response = client.get("/hello/", headers={"Accept-Encoding": "gzip"})
    assert response.content == b"hello" and not response.has_header("Content-Encoding")


def test_etag_and_304(client: Any, perfkit: Any) -> None:
    """A GET gets a strong ETag; If-None-Match with it answers 304 without a body; junk is a 200."""
    first = client.get("/big/")
    etag = first["ETag"]
    assert etag.startswith('"') and etag.endswith('"')
    again = client.get("/big/", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again["ETag"] == etag and "Server-Timing" in again
    for junk in ("garbage", '"nope"', "W/", "," * 1000, '"' * 3):
        assert client.get("/big/", headers={"If-None-Match": junk}).status_code == 200


def test_etag_of_the_compressed_representation(client: Any, perfkit: Any) -> None:
    """The gzip representation has its own ETag and revalidates to a 304 that keeps it."""
    first = client.get("/big/", headers={"Accept-Encoding": "gzip"})
    etag = first["ETag"]
    assert etag.endswith('-gzip"')
    again = client.get("/big/", headers={"Accept-Encoding": "gzip", "If-None-Match": etag})
    assert again.status_code == 304 and again["ETag"] == etag


def test_cache_control_by_url_name_path_and_namespace(client: Any, perfkit: Any) -> None:
    """Cache-Control rules match a URL name, a namespaced view name, or a path pattern."""
    perfkit.PERFKIT = {
        "rules": [
            {"name": "hello", "cache_control": "public, max-age=60"},
            {"name": "api:item", "cache_control": "private, no-cache"},
            {"path": "/tickets/{pk}/", "cache_control": "no-store"},
        ]
    }
    assert client.get("/hello/")["Cache-Control"] == "public, max-age=60"
    assert client.get("/api/items/1/")["Cache-Control"] == "private, no-cache"
    assert client.get("/tickets/1/")["Cache-Control"] == "no-store"
    assert not client.get("/big/").has_header("Cache-Control")


def test_rate_limit_per_route(client: Any, perfkit: Any) -> None:
    """A route's limit refuses with 429, Retry-After and RateLimit headers; other routes go on."""
    perfkit.PERFKIT = {"rules": [{"name": "hello", "rate_limit": "2/minute"}]}
    first = client.get("/hello/")
    assert first.status_code == 200 and first["RateLimit-Policy"].endswith("q=2;w=60")
    assert client.get("/hello/").status_code == 200
    refused = client.get("/hello/")
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) >= 1 and "RateLimit" in refused
    assert "Server-Timing" in refused
    assert client.get("/big/").status_code == 200


def test_unresolved_urls_are_rate_limited(client: Any, perfkit: Any) -> None:
    """Requests that resolve to no URL pattern (404) spend the default limit too: a scan of unknown paths
    is refused with 429 and Retry-After once over it."""
    perfkit.PERFKIT = {"rate_limit": "2/minute"}
    assert client.get("/no-such-page/").status_code == 404
    assert client.get("/nor-this-one/").status_code == 404
    refused = client.get("/nor-that/")
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
    assert count("ratelimit_decisions_total", ("default", "limited")) >= 1


async def test_unresolved_urls_are_rate_limited_on_the_async_path(async_client: Any, perfkit: Any) -> None:
    """The same under the async handler."""
    perfkit.PERFKIT = {"rate_limit": "1/minute"}
    assert (await async_client.get("/no-such-page/")).status_code == 404
    assert (await async_client.get("/nor-this-one/")).status_code == 429


def test_default_rate_limit_keyed_by_user_function(client: Any, perfkit: Any) -> None:
    """The default limit with a key function of the scope (here a header) budgets each key apart."""
    perfkit.PERFKIT = {
        "rate_limit": "1/minute",
        "web": {"rate_limit_key": lambda scope: dict(scope["headers"]).get(b"x-api-key", b"-").decode()},
    }
    assert client.get("/hello/", headers={"X-Api-Key": "a"}).status_code == 200
    assert client.get("/hello/", headers={"X-Api-Key": "a"}).status_code == 429
    assert client.get("/hello/", headers={"X-Api-Key": "b"}).status_code == 200


def test_streaming_stays_streaming(client: Any, perfkit: Any) -> None:
    """A streamed response is compressed chunk by chunk, not buffered, and counted when it ends."""
    labels = ("GET", "/stream/", "2xx")
    before = count("http_request_duration_seconds", labels)
    response = client.get("/stream/", headers={"Accept-Encoding": "gzip"})
    assert response.streaming and response["Content-Encoding"] == "gzip"
    chunks = list(response.streaming_content)
    assert len(chunks) >= 5
    assert gzip.decompress(b"".join(chunks)) == b"".join((f"chunk {i} " * 100).encode() for i in range(5))
    assert not response.has_header("ETag")
    assert count("http_request_duration_seconds", labels) == before + 1


def test_excluded_paths_bypass_everything(client: Any, perfkit: Any) -> None:
    """`web.exclude` paths get no header and no metric."""
    perfkit.PERFKIT = {"web": {"exclude": ["/hello/*"]}}
    before = count("http_request_duration_seconds", ("GET", "/hello/", "2xx"))
    response = client.get("/hello/")
    assert response.content == b"hello" and not response.has_header("Server-Timing")
    assert count("http_request_duration_seconds", ("GET", "/hello/", "2xx")) == before


def test_the_middleware_is_never_thread_adapted() -> None:
    """One class: a coroutine (with an async process_view) over an async handler, plain sync over a
    sync one, so Django adapts neither the middleware nor its process_view."""
    from asgiref.sync import iscoroutinefunction

    async def async_view(request: Any) -> Any:
        return None

    def sync_view(request: Any) -> Any:
        return None

    asynchronous, synchronous = PerfkitMiddleware(async_view), PerfkitMiddleware(sync_view)
    assert iscoroutinefunction(asynchronous) and iscoroutinefunction(asynchronous.process_view)
    assert not iscoroutinefunction(synchronous) and not iscoroutinefunction(synchronous.process_view)
    assert PerfkitMiddleware.sync_capable and PerfkitMiddleware.async_capable
