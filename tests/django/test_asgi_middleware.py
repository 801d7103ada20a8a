"""PerfkitMiddleware on Django's async path (`async_client`, the ASGI handler): async views, the same
policies, streaming with async iterators, the response cache and coalescing across tasks."""

from __future__ import annotations

import asyncio
import gzip
from typing import Any

import pytest

from tests.django import web_views
from tests.django.web_support import TEST_CACHE, configure, count

pytestmark = [pytest.mark.urls("tests.django.web_urls")]


@pytest.fixture
def perfkit(settings: Any) -> Any:
    """Django's settings with perfkit's middleware installed (`web_support.configure`)."""
    return configure(settings)


async def test_async_view_timing_and_metrics(async_client: Any, perfkit: Any) -> None:
    """An async view gets Server-Timing and X-Request-ID and is counted under its URL pattern."""
    labels = ("GET", "/async/tickets/<int:pk>/", "2xx")
    before = count("http_request_duration_seconds", labels)
    response = await async_client.get("/async/tickets/1/", headers={"X-Request-ID": "req-1"})
    assert response.status_code == 200
    assert response["X-Request-ID"] == "req-1" and response["Server-Timing"].startswith("total;dur=")
    await async_client.get("/async/tickets/2/")
    assert count("http_request_duration_seconds", labels) == before + 2


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_django_adapts_nothing_of_the_middleware(
    client: Any, async_client: Any, perfkit: Any, caplog: Any, mode: str
) -> None:
    """Under both handlers Django adapts neither the middleware nor its process_view (with DEBUG on
    it logs every adaptation on `django.request`; none names perfkit)."""
    import logging

    from asgiref.sync import sync_to_async

    perfkit.DEBUG = True
    with caplog.at_level(logging.DEBUG, logger="django.request"):
        if mode == "async":
            response = await async_client.get("/async/hello/")
        else:
            response = await sync_to_async(client.get)("/hello/")
    assert response.status_code == 200
    adapted = [r.getMessage() for r in caplog.records if "adapted" in r.getMessage()]
    assert not [m for m in adapted if "perfkit" in m.lower() or "process_view" in m], adapted


async def test_async_compression_and_etag(async_client: Any, perfkit: Any) -> None:
    """Compression and ETag/304 work the same on the async path."""
    response = await async_client.get("/async/big/", headers={"Accept-Encoding": "gzip"})
    assert response["Content-Encoding"] == "gzip" and gzip.decompress(response.content) == web_views.BIG
    plain = await async_client.get("/async/big/")
    again = await async_client.get("/async/big/", headers={"If-None-Match": plain["ETag"]})
    assert again.status_code == 304 and again.content == b""


async def test_async_streaming_stays_streaming(async_client: Any, perfkit: Any) -> None:
    """An async-iterator response stays an async stream, compressed chunk by chunk."""
    response = await async_client.get("/async/stream/", headers={"Accept-Encoding": "gzip"})
    assert response.streaming and response.is_async and response["Content-Encoding"] == "gzip"
    chunks = [chunk async for chunk in response.streaming_content]
    assert len(chunks) >= 5
    assert gzip.decompress(b"".join(chunks)) == b"".join((f"chunk {i} " * 100).encode() for i in range(5))


async def test_async_rate_limit(async_client: Any, perfkit: Any) -> None:
    """The rate limit refuses on the async path too."""
    perfkit.PERFKIT = {"rules": [{"name": "ahello", "rate_limit": "1/minute"}]}
    assert (await async_client.get("/async/hello/")).status_code == 200
    refused = await async_client.get("/async/hello/")
    assert refused.status_code == 429 and "Retry-After" in refused


async def test_async_response_cache(async_client: Any, perfkit: Any) -> None:
    """An async view's response is cached and replayed (X-Cache: HIT), with the credentials rule."""
    perfkit.CACHES = {"default": TEST_CACHE}
    perfkit.PERFKIT = {"rules": [{"name": "aticket-detail", "cache_ttl": 60}]}
    web_views.calls.clear()
    first = await async_client.get("/async/tickets/5/")
    assert first["X-Cache"] == "MISS"
    hit = await async_client.get("/async/tickets/5/")
    assert hit["X-Cache"] == "HIT" and hit.json() == {"ticket": 5, "run": 1}
    bypass = await async_client.get("/async/tickets/5/", headers={"Cookie": "sessionid=abc"})
    assert bypass["X-Cache"] == "BYPASS" and bypass.json()["run"] == 2


async def test_async_coalescing(async_client: Any, perfkit: Any) -> None:
    """Concurrent identical GETs (tasks on one loop) on a coalesced route run the async view once."""
    perfkit.PERFKIT = {"rules": [{"name": "aslow", "coalesce": True}]}
    web_views.calls.clear()
    web_views.gate.clear()
    try:
        first = asyncio.ensure_future(async_client.get("/async/slow/"))
        for _ in range(500):  # the leader is in the view before the others come
            if web_views.calls.get("aslow"):
                break
            await asyncio.sleep(0.01)
        others = [asyncio.ensure_future(async_client.get("/async/slow/")) for _ in range(3)]
        await asyncio.sleep(0.2)  # (bounded: the followers reach the in-flight table)
    finally:
        web_views.gate.set()
    responses = await asyncio.wait_for(asyncio.gather(first, *others), 10)
    assert [r.content for r in responses] == [b"slow run 1"] * 4
    assert web_views.calls["aslow"] == 1


@pytest.mark.redis
@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_redis_rate_limit_shared_by_both_paths(
    client: Any, async_client: Any, perfkit: Any, mode: str
) -> None:
    """A Redis rate limiter (its client on perfkit's background loop) refuses over the limit on the sync
    and on the async path alike; its client is closed when the settings change, its keys removed."""
    import uuid

    from asgiref.sync import sync_to_async

    from tests.conftest import REDIS_URL, require_redis

    require_redis()
    prefix = f"pktest-djrl-{uuid.uuid4().hex[:8]}:"
    perfkit.PERFKIT = {
        "rules": [{"name": "hello", "rate_limit": "2/minute"}, {"name": "ahello", "rate_limit": "2/minute"}],
        "web": {"rate_limit_url": f"{REDIS_URL}?prefix={prefix}"},
    }

    async def get(path: str) -> Any:
        if mode == "async":
            return await async_client.get(f"/async{path}")
        return await sync_to_async(client.get)(path)

    try:
        assert (await get("/hello/")).status_code == 200
        assert (await get("/hello/")).status_code == 200
        refused = await get("/hello/")
        assert refused.status_code == 429 and "Retry-After" in refused
    finally:
        import redis

        from perfkit.django.middleware_policies import current

        perfkit.PERFKIT = {}
        current()  # new policies: the old ones close the limiter's client on perfkit's loop
        r = redis.Redis.from_url(REDIS_URL)
        for key in r.scan_iter(f"{prefix}*", count=1000):
            r.delete(key)
        r.close()


def test_persistent_connections_under_asgi_are_warned_about_once(
    settings: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Built for the ASGI handler with the PostgreSQL alias at CONN_MAX_AGE=60, the middleware warns
    once, naming the alias; under the WSGI handler, or at CONN_MAX_AGE=0, it says nothing."""
    from perfkit.django import PerfkitMiddleware
    from perfkit.django import middleware as module

    configure(settings)
    monkeypatch.setattr(module, "_warned", set())

    async def handler(request: Any) -> Any:
        return None

    caplog.set_level("WARNING", logger="perfkit.django")
    PerfkitMiddleware(handler)  # the test project's aliases keep CONN_MAX_AGE=0
    monkeypatch.setitem(settings.DATABASES["pg"], "CONN_MAX_AGE", 60)
    PerfkitMiddleware(lambda request: None)  # WSGI: no thread per request, nothing to say
    assert not caplog.records
    PerfkitMiddleware(handler)
    PerfkitMiddleware(handler)
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1 and "DATABASES['pg']" in warned[0] and "CONN_MAX_AGE=0" in warned[0], warned
