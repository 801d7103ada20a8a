"""Response cache (with a real perfkit Cache) and request coalescing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import perfkit
from perfkit import Cache
from perfkit.cache.orm import CacheInvalidator
from perfkit.metrics import Collector
from perfkit.web import Rule, WebConfig
from perfkit.web.coalesce import CoalesceMiddleware
from perfkit.web.response_cache import ResponseCacheMiddleware

from ..db.conftest import make_models, seed
from .conftest import REDIS_URL, series

RULES = [
    Rule(path="/tickets/{ticket_id}", cache_ttl=300, cache_tags=("tickets", "ticket:{ticket_id}")),
    Rule(path="/me", cache_ttl=300, cache_per_user=True),
    Rule(path="/lang", cache_ttl=300, cache_vary=("accept-language",)),
    Rule(path="/cookie", cache_ttl=300),
    Rule(path="/error", cache_ttl=300),
    Rule(path="/slow", cache_ttl=300, coalesce=True),
    Rule(path="/nostore", cache_ttl=300),
]


class Endpoints:
    """A Starlette app that counts how often each endpoint really runs."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self.gate = asyncio.Event()
        self.version = 1

    def count(self, name: str) -> int:
        self.calls[name] = self.calls.get(name, 0) + 1
        return self.calls[name]

    def app(self) -> Starlette:
        async def ticket(request: Request) -> Response:
            self.count("ticket")
            return JSONResponse(
                {"id": request.path_params["ticket_id"], "v": self.version},
                headers={"x-cache-tags": "org:1"},
            )

        async def me(request: Request) -> Response:
            self.count("me")
            return JSONResponse({"user": request.headers.get("x-user")})

        async def lang(request: Request) -> Response:
            self.count("lang")
            return JSONResponse({"lang": request.headers.get("accept-language")})

        async def cookie(request: Request) -> Response:
            self.count("cookie")
            response = JSONResponse({})
            response.set_cookie("s", "1")
            return response

        async def error(request: Request) -> Response:
            self.count("error")
            return JSONResponse({}, status_code=500)

        async def slow(request: Request) -> Response:
            n = self.count("slow")
            await self.gate.wait()
            return JSONResponse({"run": n})

        async def nostore(request: Request) -> Response:
            self.count("nostore")
            return JSONResponse({}, headers={"cache-control": "no-store"})

        return Starlette(
            routes=[
                Route("/tickets/{ticket_id}", ticket),
                Route("/me", me),
                Route("/lang", lang),
                Route("/cookie", cookie),
                Route("/error", error),
                Route("/slow", slow),
                Route("/nostore", nostore),
            ]
        )


def redis_up() -> bool:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError:
        return False
    return True


@pytest.fixture(
    params=[
        "memory",
        pytest.param(
            "redis",
            marks=[pytest.mark.redis, pytest.mark.skipif(not redis_up(), reason="Redis not reachable")],
        ),
    ]
)
async def cache(request: pytest.FixtureRequest) -> AsyncIterator[Cache]:
    namespace = f"perfkit-test-{uuid.uuid4().hex}"
    url = "memory://?max_size=1000" if request.param == "memory" else REDIS_URL
    c = Cache(url, namespace=namespace)
    yield c
    await c.clear()
    await c.close()


def user(scope: dict[str, Any]) -> str | None:
    return dict(scope["headers"]).get(b"x-user", b"").decode() or None


@pytest.fixture
def endpoints() -> Endpoints:
    return Endpoints()


@pytest.fixture
async def client(
    cache: Cache, endpoints: Endpoints, collector: Collector
) -> AsyncIterator[httpx.AsyncClient]:
    app = perfkit.instrument(
        endpoints.app(), cache=cache, config=WebConfig(rules=RULES, user=user), collector=collector
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as c:
        yield c


async def test_miss_then_hit(client: httpx.AsyncClient, endpoints: Endpoints) -> None:
    """The first GET runs the endpoint (MISS); the second is served from the cache (HIT)."""
    first = await client.get("/tickets/1")
    second = await client.get("/tickets/1")
    assert first.headers["x-cache"] == "MISS"
    assert second.headers["x-cache"] == "HIT"
    assert second.json() == first.json() == {"id": "1", "v": 1}
    assert endpoints.calls["ticket"] == 1
    assert "x-cache-tags" not in first.headers
    assert "x-cache-tags" not in second.headers


async def test_query_string_is_part_of_key(client: httpx.AsyncClient, endpoints: Endpoints) -> None:
    """Different query strings are different entries."""
    await client.get("/tickets/1?page=1")
    await client.get("/tickets/1?page=2")
    assert endpoints.calls["ticket"] == 2


async def test_tag_invalidation_evicts(client: httpx.AsyncClient, cache: Cache, endpoints: Endpoints) -> None:
    """Invalidating a route tag, a path-parameter tag or an endpoint-declared tag evicts the entry."""
    for tag in ("ticket:1", "tickets", "org:1"):
        await client.get("/tickets/1")
        assert (await client.get("/tickets/1")).headers["x-cache"] == "HIT"
        endpoints.version += 1
        await cache.invalidate_tags([tag])
        fresh = await client.get("/tickets/1")
        assert fresh.headers["x-cache"] == "MISS"
        assert fresh.json()["v"] == endpoints.version


async def test_per_user_entries(client: httpx.AsyncClient, endpoints: Endpoints) -> None:
    """With cache_per_user, each user has an own entry and never sees another's response."""
    a1 = await client.get("/me", headers={"x-user": "alice"})
    b1 = await client.get("/me", headers={"x-user": "bob"})
    a2 = await client.get("/me", headers={"x-user": "alice"})
    assert (a1.json(), b1.json(), a2.json()) == ({"user": "alice"}, {"user": "bob"}, {"user": "alice"})
    assert a2.headers["x-cache"] == "HIT"
    assert endpoints.calls["me"] == 2


async def test_vary_headers(client: httpx.AsyncClient, endpoints: Endpoints) -> None:
    """Headers listed in cache_vary select the variant."""
    fr = await client.get("/lang", headers={"accept-language": "fr"})
    de = await client.get("/lang", headers={"accept-language": "de"})
    fr2 = await client.get("/lang", headers={"accept-language": "fr"})
    assert (fr.json()["lang"], de.json()["lang"], fr2.json()["lang"]) == ("fr", "de", "fr")
    assert endpoints.calls["lang"] == 2


@pytest.mark.parametrize("path", ["/cookie", "/error", "/nostore"])
async def test_not_cached_by_default(client: httpx.AsyncClient, endpoints: Endpoints, path: str) -> None:
    """Responses with Set-Cookie, non-2xx status, or no-store are never cached."""
    await client.get(path)
    client.cookies.clear()  # the cookie /cookie set would make the next request bypass the cache
    second = await client.get(path)
    assert second.headers["x-cache"] == "MISS"
    assert endpoints.calls[path.strip("/")] == 2


async def test_post_not_cached(client: httpx.AsyncClient, endpoints: Endpoints) -> None:
    """Only GET is cached; other methods go to the app (405 here) every time."""
    assert (await client.post("/tickets/1")).status_code == 405
    assert (await client.post("/tickets/1")).status_code == 405
    assert "ticket" not in endpoints.calls


async def test_concurrent_misses_coalesced(
    client: httpx.AsyncClient, endpoints: Endpoints, collector: Collector
) -> None:
    """50 concurrent GETs of a cold key run the endpoint once and all get its answer."""
    tasks = [asyncio.create_task(client.get("/slow")) for _ in range(50)]
    # every request has looked the key up (a Redis round trip each) and reached the in-flight table
    # once the miss counter reads 50: the counter is bumped right before joining, with no await between
    while series(collector, "http_response_cache_total").get(("/slow", "miss"), 0) < 50:
        await asyncio.sleep(0.001)
    endpoints.gate.set()
    responses = await asyncio.gather(*tasks)
    assert {r.status_code for r in responses} == {200}
    assert {r.json()["run"] for r in responses} == {1}
    assert endpoints.calls["slow"] == 1
    assert series(collector, "http_response_cache_total")[("/slow", "coalesced")] == 49


async def test_cache_operations_observed(client: httpx.AsyncClient, collector: Collector) -> None:
    """instrument(cache=...) hooks the cache: its operations are counted and timed per request."""
    await client.get("/tickets/9")
    hit = await client.get("/tickets/9")
    assert "cache;dur=" in hit.headers["server-timing"]
    ops = series(collector, "cache_operations_total")
    assert any(k[2] == "get" and k[3] == "hit" for k in ops), ops
    assert sum(1 for k, v in ops.items() if k[2] == "set" and v >= 1) >= 1
    assert series(collector, "http_response_cache_total")[("/tickets/{ticket_id}", "hit")] == 1


async def test_coalesce_without_cache(endpoints: Endpoints) -> None:
    """CoalesceMiddleware alone shares one endpoint run among identical concurrent GETs."""
    app = CoalesceMiddleware(endpoints.app(), config=WebConfig(rules=RULES, user=user))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as c:
        tasks = [asyncio.create_task(c.get("/slow")) for _ in range(10)]
        while endpoints.calls.get("slow", 0) == 0:
            await asyncio.sleep(0)
        for _ in range(20):
            await asyncio.sleep(0)
        endpoints.gate.set()
        responses = await asyncio.gather(*tasks)
        later = await c.get("/slow")
    assert [r.json()["run"] for r in responses] == [1] * 10
    assert later.json()["run"] == 2  # no caching: a later request runs again


async def test_broken_cache_degrades(endpoints: Endpoints) -> None:
    """A cache that raises is treated as a miss: the app answers, no 500."""

    class Broken:
        async def get(self, key: str, default: Any = None) -> Any:
            raise perfkit.BackendUnavailableError("down")

        async def set(self, *args: Any, **kwargs: Any) -> None:
            raise perfkit.BackendUnavailableError("down")

    app = ResponseCacheMiddleware(endpoints.app(), cache=Broken(), config=WebConfig(rules=RULES, user=user))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as c:
        responses = [await c.get("/tickets/3") for _ in range(2)]
    assert [r.status_code for r in responses] == [200, 200]
    assert endpoints.calls["ticket"] == 2


async def test_orm_write_evicts_dependent_response(tmp_path: Path) -> None:
    """With cache_depends_on, committing a change to that row (and only that row) evicts the response."""
    m = make_models()
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'orm.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(m.Base.metadata.create_all)
        await conn.run_sync(lambda sync_conn: seed(Session(bind=sync_conn), m))
    factory = async_sessionmaker(engine, expire_on_commit=False)
    cache = Cache("memory://?max_size=1000", namespace=f"perfkit-test-{uuid.uuid4().hex}")
    invalidator = CacheInvalidator(cache)
    invalidator.instrument(factory)
    runs = 0

    async def ticket(request: Request) -> Response:
        nonlocal runs
        runs += 1
        async with factory() as session:
            row = await session.get(m.Ticket, int(request.path_params["ticket_id"]))
            return JSONResponse({"status": row.status})

    rule = Rule(path="/tickets/{ticket_id}", cache_ttl=300, cache_depends_on=(m.Ticket.id == "{ticket_id}",))
    app = perfkit.instrument(
        Starlette(routes=[Route("/tickets/{ticket_id}", ticket)]),
        cache=cache,
        config=WebConfig(rules=[rule]),
        collector=Collector(),
    )

    async def set_status(ticket_id: int, status: str) -> None:
        async with factory() as session:
            (await session.get(m.Ticket, ticket_id)).status = status
            await session.commit()

    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as c:
            assert (await c.get("/tickets/1")).headers["x-cache"] == "MISS"
            assert (await c.get("/tickets/1")).headers["x-cache"] == "HIT"
            await set_status(2, "other row")
            assert (await c.get("/tickets/1")).headers["x-cache"] == "HIT"
            await set_status(1, "reopened")
            fresh = await c.get("/tickets/1")
        assert fresh.headers["x-cache"] == "MISS"
        assert fresh.json() == {"status": "reopened"}
        assert runs == 2
    finally:
        await cache.close()
        await engine.dispose()
