"""Response cache and coalescing with credentials: never one caller's response to another, never a cached
200 in place of the app's 401 (RFC 9111 §3.5), and per-user entries only where a rule keys on the caller."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

import perfkit
from perfkit.errors import ConfigurationError
from perfkit.metrics import Collector
from perfkit.web import CoalesceMiddleware, ResponseCacheMiddleware, Rule, WebConfig
from perfkit.web.cache_key import cache_key
from tests.conftest import CACHE_KINDS, CacheFactory

from .conftest import series

TOKENS = {"admin-token": "admin", "alice-token": "alice"}
SESSIONS = {"admin-session": "admin", "alice-session": "alice"}
ADMIN = {"authorization": "Bearer admin-token"}
ALICE = {"authorization": "Bearer alice-token"}
ADMIN_COOKIE = {"cookie": "session=admin-session"}
ALICE_COOKIE = {"cookie": "session=alice-session"}


@pytest.fixture(params=[p for p in CACHE_KINDS if p.id in ("memory", "redis", "memory+redis")])
def cache_kind(request: pytest.FixtureRequest) -> str:
    """The response cache on memory, on Redis (the L2 every process shares) and on memory L1 + Redis L2."""
    return str(request.param)


def who(conn: HTTPConnection) -> str | None:
    """The signed-in user: a bearer token, else a session cookie; None when neither is valid."""
    auth = conn.headers.get("authorization", "")
    if auth.startswith("Bearer "):
        return TOKENS.get(auth.removeprefix("Bearer "))
    return SESSIONS.get(conn.cookies.get("session", ""))


def user_key(scope: dict[str, Any]) -> str | None:
    """`WebConfig.user` / `cache_per_user=`: the same identity the app authenticates."""
    return who(HTTPConnection(scope))


class Api:
    """A small API: `/users/me` authenticated by bearer token or session cookie (401 otherwise), a
    `private` greeting for anyone, a public catalog, and a login that sets a session cookie; every
    endpoint counts its real runs, and `gate` (when set up) holds `/users/me` until released."""

    def __init__(self) -> None:
        self.runs: dict[str, int] = {}
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()

    def run(self, name: str) -> int:
        self.runs[name] = self.runs.get(name, 0) + 1
        return self.runs[name]

    def app(self) -> Starlette:
        async def me(request: Request) -> Response:
            n = self.run("me")
            self.entered.set()
            if self.gate is not None:
                await self.gate.wait()
            user = who(request)
            if user is None:
                return JSONResponse({"detail": "not authenticated"}, status_code=401)
            return JSONResponse({"user": user, "email": f"{user}@example.com", "run": n})

        async def hello(request: Request) -> Response:
            self.run("hello")
            text = f"hello {who(request) or 'stranger'}"
            return PlainTextResponse(text, headers={"cache-control": "private, max-age=60"})

        async def catalog(request: Request) -> Response:
            return JSONResponse({"items": [1, 2, 3], "run": self.run("catalog")})

        async def login(request: Request) -> Response:
            n = self.run("login")
            self.entered.set()
            if self.gate is not None:
                await self.gate.wait()
            response = JSONResponse({"run": n})
            response.set_cookie("session", f"new-session-{n}")
            return response

        async def lang(request: Request) -> Response:
            n = self.run("lang")
            self.entered.set()
            if self.gate is not None:
                await self.gate.wait()
            vary = request.query_params.get("vary", "Accept-Language")
            text = f"{request.headers.get('accept-language', 'en')} {n}"
            return PlainTextResponse(text, headers={"vary": vary})

        return Starlette(
            routes=[
                Route("/lang", lang),
                Route("/api/v1/users/me", me, name="me"),
                Route("/hello", hello),
                Route("/catalog", catalog),
                Route("/login", login),
            ]
        )


Serve = Callable[..., httpx.AsyncClient]


@pytest.fixture
async def serve(make_cache: CacheFactory) -> AsyncIterator[Serve]:
    """`serve(api, *rules, **config)`: an httpx client on `instrument(api.app())` with a real cache of the
    matrix kind; `collector` and `cache` are on the client for the test to look at."""
    clients: list[httpx.AsyncClient] = []

    def make(api: Api, *rules: Rule, **config: Any) -> httpx.AsyncClient:
        cache = make_cache(
            timeout=5.0
        )  # generous: on a loaded machine a 0.5 s Redis timeout turns a HIT into a MISS
        collector = Collector()
        app = perfkit.instrument(
            api.app(),
            cache=cache,
            config=WebConfig(rules=rules, **config),
            collector=collector,
            monitor=False,
        )
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t")
        client.collector = collector  # type: ignore[attr-defined]
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


def results(client: httpx.AsyncClient, route: str) -> dict[str, float]:
    """Response cache lookups of `route` by result (hit, miss, bypass, coalesced)."""
    found = series(client.collector, "http_response_cache_total")  # type: ignore[attr-defined]
    return {labels[1]: value for labels, value in found.items() if labels[0] == route}


ME = Rule(path="/api/v1/users/me", cache_ttl=60)


@pytest.mark.parametrize(
    ("admin", "alice"), [(ADMIN, ALICE), (ADMIN_COOKIE, ALICE_COOKIE)], ids=["bearer", "cookie"]
)
async def test_credentials_bypass_a_rule_that_does_not_key_on_them(
    serve: Serve, admin: dict[str, str], alice: dict[str, str]
) -> None:
    """A plain `cache_ttl` rule: requests with Authorization or Cookie are neither served from the cache
    nor stored; Alice gets her own data, a request with no credentials gets the app's 401."""
    api = Api()
    client = serve(api, ME)
    first = await client.get("/api/v1/users/me", headers=admin)
    again = await client.get("/api/v1/users/me", headers=admin)
    theirs = await client.get("/api/v1/users/me", headers=alice)
    nobody = await client.get("/api/v1/users/me")
    assert theirs.status_code == 200
    assert theirs.json()["user"] == "alice"  # not the admin's cached data
    assert theirs.json()["email"] == "alice@example.com"
    assert nobody.status_code == 401  # not the admin's cached 200
    assert nobody.json() == {"detail": "not authenticated"}
    assert (first.status_code, first.json()["user"], first.headers["x-cache"]) == (200, "admin", "BYPASS")
    assert (again.json()["user"], again.json()["run"], again.headers["x-cache"]) == ("admin", 2, "BYPASS")
    assert api.runs["me"] == 4  # the app ran (and authenticated) every request
    assert results(client, ME.path or "") == {"bypass": 3, "miss": 1}


async def test_anonymous_entry_is_never_served_to_a_caller_with_credentials(serve: Serve) -> None:
    """An entry filled by anonymous requests is not read by a request with credentials under a plain rule:
    the app answers it (and can authenticate it)."""
    api = Api()
    client = serve(api, Rule(path="/catalog", cache_ttl=60))
    anonymous = [await client.get("/catalog") for _ in range(2)]
    signed_in = await client.get("/catalog", headers=ALICE)
    assert [r.headers["x-cache"] for r in anonymous] == ["MISS", "HIT"]
    assert (signed_in.headers["x-cache"], signed_in.json()["run"]) == ("BYPASS", 2)


async def test_vary_on_authorization_gives_each_token_its_own_entry(serve: Serve) -> None:
    """`cache_vary=("authorization",)`: each token has its own entry (HIT on repeat by the same caller),
    no caller sees another's, and a request without a token gets the app's 401, never a cached 200."""
    api = Api()
    rule = Rule(path="/api/v1/users/me", cache_ttl=60, cache_vary=("authorization",))
    client = serve(api, rule)
    admin = [await client.get("/api/v1/users/me", headers=ADMIN) for _ in range(2)]
    alice = [await client.get("/api/v1/users/me", headers=ALICE) for _ in range(2)]
    nobody = [await client.get("/api/v1/users/me") for _ in range(2)]
    by_cookie = await client.get("/api/v1/users/me", headers=ADMIN_COOKIE)  # a credential it does not key on
    assert [r.headers["x-cache"] for r in admin] == ["MISS", "HIT"]
    assert [r.json()["user"] for r in admin] == ["admin", "admin"]
    assert [r.headers["x-cache"] for r in alice] == ["MISS", "HIT"]
    assert [r.json()["user"] for r in alice] == ["alice", "alice"]
    assert [(r.status_code, r.headers["x-cache"]) for r in nobody] == [(401, "MISS"), (401, "MISS")]
    assert (by_cookie.json()["user"], by_cookie.headers["x-cache"]) == ("admin", "BYPASS")
    assert api.runs["me"] == 5  # admin once, alice once, the two 401s, the cookie request


@pytest.mark.parametrize("where", ["config", "rule"])
async def test_per_user_key_shares_one_entry_per_user_across_credentials(serve: Serve, where: str) -> None:
    """`cache_per_user` with `WebConfig.user` (or the rule's own function): one entry per user, whichever
    credential they sign in with; a credential the function does not recognise bypasses (the app's 401);
    no credentials at all get the app's 401, never a user's entry."""
    api = Api()
    if where == "config":
        client = serve(api, Rule(path="/api/v1/users/me", cache_ttl=60, cache_per_user=True), user=user_key)
    else:
        client = serve(api, Rule(path="/api/v1/users/me", cache_ttl=60, cache_per_user=user_key))
    token = await client.get("/api/v1/users/me", headers=ADMIN)
    cookie = await client.get("/api/v1/users/me", headers=ADMIN_COOKIE)
    alice = [await client.get("/api/v1/users/me", headers=h) for h in (ALICE_COOKIE, ALICE)]
    forged = await client.get("/api/v1/users/me", headers={"authorization": "Bearer forged"})
    nobody = await client.get("/api/v1/users/me")
    assert (token.headers["x-cache"], cookie.headers["x-cache"]) == ("MISS", "HIT")
    assert token.json() == cookie.json() == {"user": "admin", "email": "admin@example.com", "run": 1}
    assert [r.headers["x-cache"] for r in alice] == ["MISS", "HIT"]
    assert {r.json()["user"] for r in alice} == {"alice"}
    assert (forged.status_code, forged.headers["x-cache"]) == (401, "BYPASS")
    assert (nobody.status_code, nobody.headers["x-cache"]) == (401, "MISS")


async def test_private_response_kept_only_in_an_entry_of_its_own_user(serve: Serve) -> None:
    """A `Cache-Control: private` response is stored under a per-user key, never in the entry that all
    anonymous callers share."""
    api = Api()
    client = serve(api, Rule(path="/hello", cache_ttl=60, cache_per_user=True), user=user_key)
    strangers = [await client.get("/hello") for _ in range(2)]
    alice = [await client.get("/hello", headers=ALICE) for _ in range(2)]
    assert [r.headers["x-cache"] for r in strangers] == ["MISS", "MISS"]
    assert [(r.text, r.headers["x-cache"]) for r in alice] == [
        ("hello alice", "MISS"),
        ("hello alice", "HIT"),
    ]
    assert api.runs["hello"] == 3


async def test_public_rule_shares_one_entry_whatever_the_credentials(serve: Serve) -> None:
    """`cache_public=True`: the response is the same for everyone, so requests with cookies (say,
    analytics) or a token read and fill the one entry."""
    api = Api()
    client = serve(api, Rule(path="/catalog", cache_ttl=60, cache_public=True))
    answers = [
        await client.get("/catalog", headers={"cookie": "_ga=GA1.1.123"}),
        await client.get("/catalog", headers={"cookie": "_ga=GA1.1.456"}),
        await client.get("/catalog", headers=ALICE),
        await client.get("/catalog"),
    ]
    assert [r.headers["x-cache"] for r in answers] == ["MISS", "HIT", "HIT", "HIT"]
    assert api.runs["catalog"] == 1


async def test_extra_credential_header_bypasses_too(serve: Serve) -> None:
    """A header named in `WebConfig.credential_headers` (an API key) keeps its requests out of the
    shared entry, like Authorization and Cookie."""
    api = Api()
    client = serve(api, Rule(path="/catalog", cache_ttl=60),
                   credential_headers=("authorization", "cookie", "x-api-key"))  # fmt: skip
    assert (await client.get("/catalog")).headers["x-cache"] == "MISS"
    assert (await client.get("/catalog", headers={"x-api-key": "k1"})).headers["x-cache"] == "BYPASS"
    assert (await client.get("/catalog")).headers["x-cache"] == "HIT"


async def test_host_is_part_of_the_key(serve: Serve) -> None:
    """Requests for another Host get their own entry: a tenant's page is never served on another
    tenant's host, and a forged Host cannot fill the entry real clients read."""
    api = Api()
    client = serve(api, Rule(path="/catalog", cache_ttl=60))
    a = await client.get("http://a.example/catalog")
    b = await client.get("http://b.example/catalog")
    a2 = await client.get("http://a.example/catalog")
    assert [r.headers["x-cache"] for r in (a, b, a2)] == ["MISS", "MISS", "HIT"]
    assert api.runs["catalog"] == 2


async def concurrently(client: httpx.AsyncClient, api: Api, path: str, *headers: dict[str, str]) -> list[Any]:
    """Send one request per `headers` at once; release the endpoint once every request that is going to
    run it has entered (or, when they were coalesced, once the others are queued behind the first)."""
    api.gate = asyncio.Event()
    tasks = [asyncio.create_task(client.get(path, headers=h)) for h in headers]
    await api.entered.wait()
    for _ in range(50):  # let every request reach the endpoint or the in-flight table
        await asyncio.sleep(0)
    api.gate.set()
    return list(await asyncio.gather(*tasks))


async def test_concurrent_callers_with_different_credentials_not_coalesced(serve: Serve) -> None:
    """Concurrent misses by admin and Alice (a rule with no per-user key) each run the endpoint."""
    api = Api()
    client = serve(api, ME)
    responses = await concurrently(client, api, "/api/v1/users/me", ADMIN, ALICE, ADMIN_COOKIE)
    assert [r.json()["user"] for r in responses] == ["admin", "alice", "admin"]
    assert api.runs["me"] == 3


async def test_concurrent_misses_by_one_token_coalesced_others_apart(serve: Serve) -> None:
    """With a per-token key, concurrent misses by one caller share one run; another caller has its own."""
    api = Api()
    client = serve(api, Rule(path="/api/v1/users/me", cache_ttl=60, cache_vary=("authorization",)))
    responses = await concurrently(client, api, "/api/v1/users/me", ADMIN, ADMIN, ADMIN, ALICE, ALICE)
    assert [r.json()["user"] for r in responses] == ["admin"] * 3 + ["alice"] * 2
    assert api.runs["me"] == 2


class DictCache:
    """A cache-like object without `get_or_set`: the response cache's other miss path."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    async def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    async def set(self, key: str, value: Any, ttl: float | None = None, tags: Any = None) -> None:
        self.data[key] = value


@pytest.mark.parametrize("layer", ["coalesce", "dict-cache"])
async def test_coalescing_layers_keep_callers_apart(layer: str) -> None:
    """`CoalesceMiddleware`, and the response cache over a cache without `get_or_set`, never share one
    caller's run with a caller of other credentials, and share it among one caller's requests when keyed."""
    for rule, expected_runs in ((Rule(path="/api/v1/users/me", coalesce=True, cache_ttl=60), 3),
                                (Rule(path="/api/v1/users/me", coalesce=True, cache_ttl=60,
                                      cache_vary=("authorization",)), 2)):  # fmt: skip
        api = Api()
        config = WebConfig(rules=[rule])
        app: Any = (
            CoalesceMiddleware(api.app(), config=config)
            if layer == "coalesce"
            else ResponseCacheMiddleware(api.app(), cache=DictCache(), config=config, collector=Collector())
        )
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as client:
            responses = await concurrently(client, api, "/api/v1/users/me", ADMIN, ALICE, ADMIN)
        assert [r.json()["user"] for r in responses] == ["admin", "alice", "admin"]
        assert api.runs["me"] == expected_runs


async def test_coalescing_never_shares_a_set_cookie() -> None:
    """Two anonymous concurrent logins each get their own session cookie: a response that sets a cookie
    is not handed to another request."""
    api = Api()
    app = CoalesceMiddleware(api.app(), config=WebConfig(rules=[Rule(path="/login", coalesce=True)]))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as client:
        responses = await concurrently(client, api, "/login", {}, {})
    cookies = [r.headers["set-cookie"].split(";")[0] for r in responses]
    assert sorted(cookies) == ["session=new-session-1", "session=new-session-2"]
    assert api.runs["login"] == 2


async def test_response_varying_outside_the_key_not_stored(serve: Serve) -> None:
    """A response with `Vary: Accept-Language` is stored only when the rule keys on that header; `Vary: *`
    never; `Vary: Cookie` in a per-user entry is (the user key accounts for the credentials)."""
    api = Api()
    client = serve(api, Rule(path="/lang", cache_ttl=60, cache_query=False, cache_per_user=user_key))
    fr, de = {"accept-language": "fr"}, {"accept-language": "de"}
    unkeyed = [(await client.get("/lang", headers=h)).text for h in (fr, de)]
    assert unkeyed == ["fr 1", "de 2"]  # de is not served the French entry
    keyed = serve(api, Rule(path="/lang", cache_ttl=60, cache_vary=("accept-language",)))
    answers = [await keyed.get("/lang", headers=h) for h in (fr, fr, de)]
    assert [(r.text, r.headers["x-cache"]) for r in answers] == [
        ("fr 3", "MISS"),
        ("fr 3", "HIT"),
        ("de 4", "MISS"),
    ]
    star = [await keyed.get("/lang?vary=*", headers=fr) for _ in range(2)]
    assert [r.headers["x-cache"] for r in star] == ["MISS", "MISS"]
    by_user = [await client.get("/lang?vary=Cookie", headers=ALICE_COOKIE) for _ in range(2)]
    assert [r.headers["x-cache"] for r in by_user] == ["MISS", "HIT"]


async def test_coalescing_never_shares_a_response_varying_outside_the_key() -> None:
    """Concurrent requests with different Accept-Language to an endpoint that varies on it each get their
    own answer from `CoalesceMiddleware` (the key has no Accept-Language)."""
    api = Api()
    app = CoalesceMiddleware(api.app(), config=WebConfig(rules=[Rule(path="/lang", coalesce=True)]))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as client:
        responses = await concurrently(
            client, api, "/lang", {"accept-language": "fr"}, {"accept-language": "de"}
        )
    assert sorted(r.text.split()[0] for r in responses) == ["de", "fr"]
    assert api.runs["lang"] == 2


def test_per_user_rule_needs_a_user_key() -> None:
    """`cache_per_user=True` without `WebConfig.user` would put every user in one entry: refused."""
    with pytest.raises(ConfigurationError, match=r"cache_per_user.*WebConfig\.user"):
        WebConfig(rules=[Rule(path="/me", cache_ttl=60, cache_per_user=True)])


@pytest.mark.parametrize(
    ("make", "setting"),
    [
        (lambda: Rule(path="/me", cache_ttl=60, cache_vary="authorization"), "rules.cache_vary"),  # type: ignore[arg-type]
        (lambda: Rule(path="/me", cache_ttl=60, cache_per_user="yes"), "rules.cache_per_user"),  # type: ignore[arg-type]
        (
            lambda: Rule(path="/me", cache_ttl=60, cache_per_user=user_key, cache_public=True),
            "rules.cache_public",
        ),
        (lambda: WebConfig(credential_headers="authorization"), "credential_headers"),
    ],
)
def test_bad_credential_settings_refused(make: Callable[[], Any], setting: str) -> None:
    """A header name where a tuple belongs, a per-user flag that is not a function, a rule both public
    and per user: each raises ConfigurationError naming the setting."""
    with pytest.raises(ConfigurationError, match=setting):
        make()


def scope_with(*headers: tuple[bytes | bytearray, bytes | bytearray]) -> dict[str, Any]:
    return {"type": "http", "method": "GET", "scheme": "http", "path": "/p", "root_path": "",
            "query_string": b"", "headers": list(headers)}  # fmt: skip


async def test_keys_are_unambiguous() -> None:
    """An absent header, an empty one and a repeated one give different keys; so does each credential
    value under a per-token rule; raw bytearray header names work."""
    config = WebConfig()
    rule = Rule(path="/p", cache_ttl=60, cache_vary=("x-a", "cookie"))
    variants = [
        scope_with(),
        scope_with((b"x-a", b"")),
        scope_with((b"x-a", b"1")),
        scope_with((b"x-a", b"1"), (b"x-a", b"")),
        scope_with((b"cookie", b"s=1")),
        scope_with((b"cookie", b"s=1"), (b"cookie", b"t=2")),
        scope_with((b"cookie", b"s=1; t=2")),
        scope_with((bytearray(b"cookie"), bytearray(b"s=2"))),
    ]
    keys = [await cache_key(s, rule, config, "r:") for s in variants]
    assert all(k is not None for k in keys)
    assert len({k.key for k in keys if k is not None}) == len(variants)
    again = await cache_key(scope_with((b"cookie", b"s=1")), rule, config, "r:")
    assert again is not None and again.key == keys[4].key  # type: ignore[union-attr]


def fastapi_app() -> Any:
    """The template's shape: every route under `include_router(prefix="/api/v1")`, `/users/me` behind an
    OAuth2 bearer dependency that answers 401 itself."""
    from fastapi import APIRouter, Depends, FastAPI, HTTPException
    from fastapi.security import OAuth2PasswordBearer

    oauth2 = OAuth2PasswordBearer(tokenUrl="/api/v1/login/access-token")
    router = APIRouter()

    def current_user(token: str = Depends(oauth2)) -> str:
        user = TOKENS.get(token)
        if user is None:
            raise HTTPException(status_code=403, detail="Could not validate credentials")
        return user

    @router.get("/users/me")
    def read_user_me(user: str = Depends(current_user)) -> dict[str, str]:
        return {"user": user, "email": f"{user}@example.com"}

    app = FastAPI()
    app.include_router(router, prefix="/api/v1")
    return app


@pytest.mark.parametrize("opt_in", [False, True], ids=["plain-rule", "per-user-rule"])
async def test_fastapi_included_router_with_bearer_dependency(make_cache: CacheFactory, opt_in: bool) -> None:
    """On a FastAPI app built like the full-stack template: Alice never gets the admin's cached data, a
    request without a token gets FastAPI's 401, and with `cache_per_user` each user's repeat is a HIT."""
    rule = Rule(path="/api/v1/users/me", cache_ttl=60, cache_per_user=user_key if opt_in else False)
    app = perfkit.instrument(fastapi_app(), cache=make_cache(timeout=5.0), config=WebConfig(rules=[rule]),
                             collector=Collector(), monitor=False)  # fmt: skip
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as client:
        admin = [await client.get("/api/v1/users/me", headers=ADMIN) for _ in range(2)]
        alice = [await client.get("/api/v1/users/me", headers=ALICE) for _ in range(2)]
        nobody = await client.get("/api/v1/users/me")
    assert [r.json()["user"] for r in admin] == ["admin", "admin"]
    assert [r.json()["user"] for r in alice] == ["alice", "alice"]
    assert nobody.status_code == 401
    assert nobody.json() == {"detail": "Not authenticated"}
    expected = ["MISS", "HIT"] if opt_in else ["BYPASS", "BYPASS"]
    assert [r.headers["x-cache"] for r in admin] == [r.headers["x-cache"] for r in alice] == expected
