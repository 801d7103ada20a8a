"""Rate limiting: GCRA on memory, Redis and Redis Cluster, IETF headers, 429, per client and route class,
Redis (or a cluster node) down."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import shutil
import signal
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

import perfkit
from perfkit.metrics import Collector
from perfkit.web import RateLimit, RateLimitMiddleware, Rule, WebConfig
from perfkit.web.ratelimit.backend import gcra
from tests import _redis_server
from tests._cluster import LocalCluster
from tests.conftest import free_port, one_per_primary

from .conftest import REDIS_URL, make_starlette

RULES = [
    Rule(path="/items*", rate_limit="5/minute", rate_class="catalog"),
    Rule(path="/", rate_limit="3/minute"),
]


def redis_available() -> bool:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError:
        return False
    return True


needs_redis = pytest.mark.skipif(not redis_available(), reason=f"Redis not reachable at {REDIS_URL}")


def make_app(url: str = "memory://", fail: str = "open", **config: Any) -> RateLimitMiddleware:
    """The limiter wrapped directly around a Starlette app, so the test can close its backend."""
    cfg = WebConfig(rules=RULES, rate_limit_url=url, rate_limit_fail=fail, **config)
    return RateLimitMiddleware(make_starlette(), config=cfg, collector=Collector())


@pytest.fixture(
    params=[
        "memory",
        pytest.param("redis", marks=[pytest.mark.redis, needs_redis]),
        pytest.param("redis-cluster", marks=pytest.mark.redis_cluster),
    ]
)
def limiter_url(request: pytest.FixtureRequest) -> str:
    """A rate-limit URL of each kind, under a key prefix of the test's own that its fixture cleans up."""
    if request.param == "memory":
        return "memory://"
    if request.param == "redis":
        return f"{REDIS_URL}?prefix={request.getfixturevalue('prefix')}"
    cluster = request.getfixturevalue("redis_cluster_url")
    return f"{cluster}?prefix={request.getfixturevalue('cluster_prefix')}"


@pytest.fixture
async def limited(limiter_url: str) -> AsyncIterator[httpx.AsyncClient]:
    # a generous timeout: on a loaded machine 0.25 s would fail open and the counts would not be checked
    app = make_app(limiter_url, rate_limit_timeout=5.0)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as client:
        yield client
    await app.backend.close()


async def test_limit_then_429_with_headers(limited: httpx.AsyncClient) -> None:
    """Within the limit: 200 with RateLimit headers counting down; over it: 429 with Retry-After."""
    remaining = []
    for _ in range(3):
        response = await limited.get("/")
        assert response.status_code == 200
        assert response.headers["ratelimit-policy"] == '"/";q=3;w=60'
        remaining.append(response.headers["ratelimit"])
    assert [r.split(";")[1] for r in remaining] == ["r=2", "r=1", "r=0"]
    refused = await limited.get("/")
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 20
    assert refused.json() == {"detail": "rate limit exceeded"}
    assert refused.headers["ratelimit"].startswith('"/";r=0;t=')


async def test_route_class_shares_budget(limited: httpx.AsyncClient) -> None:
    """Routes in one rate class draw from one budget (5 over /items and /items/1 together)."""
    codes = [(await limited.get(p)).status_code for p in ["/items", "/items/1"] * 3]
    assert codes == [200] * 5 + [429]


async def test_per_client_budgets() -> None:
    """Each API key has its own budget; None from the key function exempts the request."""

    def key(scope: dict[str, Any]) -> str | None:
        headers = dict(scope["headers"])
        return None if b"x-admin" in headers else headers.get(b"x-api-key", b"anon").decode()

    app = make_app(rate_limit_key=key)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as c:
        a = [(await c.get("/", headers={"x-api-key": "a"})).status_code for _ in range(4)]
        b = [(await c.get("/", headers={"x-api-key": "b"})).status_code for _ in range(4)]
        admin = [(await c.get("/", headers={"x-admin": "1"})).status_code for _ in range(10)]
    await app.backend.close()
    assert a == b == [200, 200, 200, 429]
    assert admin == [200] * 10


async def test_unlimited_routes_untouched() -> None:
    """A route without a rule and no default limit gets no headers and no limit."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(make_app()), base_url="http://t") as c:
        responses = [await c.get("/image") for _ in range(20)]
    assert {r.status_code for r in responses} == {200}
    assert "ratelimit" not in responses[0].headers


def test_gcra_refills_over_time() -> None:
    """GCRA: a burst of `limit`, then one request per period/limit as time passes."""
    limit = RateLimit.parse("10/second")
    tat = 0.0
    for _ in range(10):
        decision, tat = gcra(tat, 100.0, limit)
        assert decision.allowed
    refused, tat = gcra(tat, 100.0, limit)
    assert not refused.allowed
    assert refused.retry_after == pytest.approx(0.1)
    later, _ = gcra(tat, 100.1, limit)
    assert later.allowed


@pytest.mark.parametrize("text", ["", "100", "x/minute", "0/minute", "5/fortnight", "-1/second"])
def test_bad_rate_strings_rejected(text: str) -> None:
    """Unparseable rates raise ConfigurationError naming the setting."""
    from perfkit.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="rate_limit"):
        RateLimit.parse(text)


DOWN_URLS = [
    pytest.param("redis://127.0.0.1:{port}/0", marks=pytest.mark.redis, id="redis"),
    pytest.param("redis+cluster://127.0.0.1:{port}", marks=pytest.mark.redis_cluster, id="redis-cluster"),
]


@pytest.mark.parametrize("url", DOWN_URLS)
async def test_redis_down_fails_open(url: str, caplog: pytest.LogCaptureFixture) -> None:
    """With Redis unreachable (closed port) requests pass, with one warning for the outage."""
    app = make_app(url.format(port=free_port()))
    with caplog.at_level(logging.WARNING, logger="perfkit.web.ratelimit"):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as c:
            codes = [(await c.get("/")).status_code for _ in range(6)]
    await app.backend.close()
    assert codes == [200] * 6
    assert len([r for r in caplog.records if "backend down" in r.getMessage()]) == 1


@pytest.mark.parametrize("url", DOWN_URLS)
async def test_failing_open_claims_no_quota(url: str) -> None:
    """Failing open (Redis unreachable), the answer has no RateLimit headers: not a made-up full quota
    (`r=3;t=0`), the same through the middleware alone and through `instrument()`'s fused layer."""
    down = url.format(port=free_port())
    alone = make_app(down)
    stacked = perfkit.instrument(
        make_starlette(),
        config=WebConfig(rules=RULES, rate_limit_url=down),
        collector=Collector(),
        monitor=False,
    )
    try:
        for app in (alone, stacked):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as c:
                responses = [await c.get("/") for _ in range(2)]
            assert [r.status_code for r in responses] == [200, 200]
            for response in responses:
                assert "ratelimit" not in response.headers
                assert "ratelimit-policy" not in response.headers
    finally:
        await alone.backend.close()
        await stacked.state.perfkit.close()


@pytest.mark.redis
@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server binary not installed")
async def test_quota_headers_leave_with_redis_and_come_back_with_it(prefix: str) -> None:
    """A private redis-server: counted headers while it runs; stopped, requests pass with no RateLimit
    headers; started again on the same port, the headers come back (a fresh budget: no persistence)."""
    port = free_port()
    proc = _redis_server.start(port)
    app = make_app(f"redis://127.0.0.1:{port}/0?prefix={prefix}", rate_limit_timeout=2.0)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as c:
            up = await c.get("/")
            proc.terminate()
            proc.wait(timeout=10)
            down = [await c.get("/") for _ in range(2)]
            proc = _redis_server.start(port)
            back = await c.get("/")
    finally:
        await app.backend.close()
        proc.terminate()
        proc.wait(timeout=10)
    assert up.headers["ratelimit"].startswith('"/";r=2;')
    assert [r.status_code for r in down] == [200, 200]
    assert all("ratelimit" not in r.headers and "ratelimit-policy" not in r.headers for r in down)
    assert back.status_code == 200
    assert back.headers["ratelimit"].startswith('"/";r=2;')


@pytest.mark.parametrize("url", DOWN_URLS)
async def test_redis_down_fails_closed(url: str) -> None:
    """Configured to fail closed, an unreachable Redis gives 503 with Retry-After."""
    app = make_app(url.format(port=free_port()), fail="closed")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as c:
        response = await c.get("/")
    await app.backend.close()
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"


@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server binary not installed")
async def test_hung_redis_does_not_block_event_loop(prefix: str) -> None:
    """A Redis that stops answering costs one timeout per request, and the event loop keeps running."""
    port = free_port()
    proc = _redis_server.start(port)
    try:
        app = make_app(f"redis://127.0.0.1:{port}/0?prefix={prefix}", rate_limit_timeout=0.2)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as c:
            assert (await c.get("/")).status_code == 200  # connected and counting
            os.kill(proc.pid, signal.SIGSTOP)
            ticks = 0

            async def ticker() -> None:
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.01)
                    ticks += 1

            task = asyncio.create_task(ticker())
            start = time.perf_counter()
            response = await c.get("/")
            elapsed = time.perf_counter() - start
            task.cancel()
            os.kill(proc.pid, signal.SIGCONT)
            await app.backend.close()
        assert response.status_code == 200  # failed open
        assert elapsed < 2.0  # one 0.2 s timeout (generous bound: the machine may be loaded)
        assert ticks >= 2  # the loop ran other work while waiting on Redis (a blocked loop gives 0)
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        proc.terminate()
        proc.wait(timeout=10)


def api_key(scope: dict[str, Any]) -> str:
    return dict(scope["headers"]).get(b"x-api-key", b"anon").decode()


@pytest.mark.redis_cluster
async def test_two_limiters_share_budgets_on_a_cluster(
    redis_cluster_url: str, cluster_prefix: str, raw_cluster: RedisCluster
) -> None:
    """Two middlewares on one cluster draw each client's 3/minute from one budget, whichever primary
    holds that client's key, with the RateLimit headers counting down across both."""
    clients = one_per_primary(raw_cluster, lambda name: f"{cluster_prefix}/:{name}", "client")
    url = f"{redis_cluster_url}?prefix={cluster_prefix}"
    first = make_app(url, rate_limit_key=api_key, rate_limit_timeout=5.0)
    second = make_app(url, rate_limit_key=api_key, rate_limit_timeout=5.0)
    assert type(first.backend).__name__ == "RedisClusterRateLimit"
    try:
        async with (
            httpx.AsyncClient(transport=httpx.ASGITransport(first), base_url="http://t") as a,
            httpx.AsyncClient(transport=httpx.ASGITransport(second), base_url="http://t") as b,
        ):
            for name in clients.values():
                headers = {"x-api-key": name}
                answers = [await c.get("/", headers=headers) for c in (a, b, a, b)]
                assert [r.status_code for r in answers] == [200, 200, 200, 429]
                assert [r.headers["ratelimit"].split(";")[1] for r in answers] == ["r=2", "r=1", "r=0", "r=0"]
                assert {r.headers["ratelimit-policy"] for r in answers} == {'"/";q=3;w=60'}
                assert 1 <= int(answers[3].headers["retry-after"]) <= 20
    finally:
        await first.backend.close()
        await second.backend.close()
    for node, name in clients.items():  # each budget is one key, on the primary its slot belongs to
        host, _, port = node.rpartition(":")
        async with Redis(host=host, port=int(port)) as one_node:
            assert await one_node.exists(f"{cluster_prefix}/:{name}") == 1


@pytest.mark.redis_cluster
@pytest.mark.slow
async def test_cluster_node_down_fails_open_or_closed(
    private_cluster: LocalCluster, caplog: pytest.LogCaptureFixture
) -> None:
    """When the node holding a client's budget dies, a fail-open limiter lets every request through and a
    fail-closed one answers 503, each with one warning for the outage."""
    raw = RedisCluster(host="127.0.0.1", port=private_cluster.ports[0])
    await raw.initialize()
    victim = private_cluster.ports[-1]
    spread = one_per_primary(raw, lambda name: f"{name}:/:127.0.0.1", "perfkit:test:down")
    await raw.aclose()
    url = f"{private_cluster.url}?prefix={spread[f'127.0.0.1:{victim}']}:"
    fail_open = make_app(url, rate_limit_timeout=2.0)
    fail_closed = make_app(url, fail="closed", rate_limit_timeout=2.0)
    caplog.set_level(logging.WARNING, logger="perfkit.web.ratelimit")
    try:
        async with (
            httpx.AsyncClient(transport=httpx.ASGITransport(fail_open), base_url="http://t") as o,
            httpx.AsyncClient(transport=httpx.ASGITransport(fail_closed), base_url="http://t") as c,
        ):
            before = [await o.get("/"), await c.get("/")]
            assert [r.headers["ratelimit"].split(";")[1] for r in before] == ["r=2", "r=1"]  # one budget
            private_cluster.kill_node(private_cluster.ports.index(victim))
            opened = [(await o.get("/")).status_code for _ in range(5)]
            closed = [await c.get("/") for _ in range(2)]
    finally:
        await fail_open.backend.close()
        await fail_closed.backend.close()
    assert opened == [200] * 5  # past the 3/minute: nothing counts while the budget's node is down
    assert [r.status_code for r in closed] == [503, 503]
    assert closed[0].headers["retry-after"] == "1"
    warnings = [r.getMessage() for r in caplog.records if "backend down" in r.getMessage()]
    assert len(warnings) == 2, warnings
    assert "failing open" in warnings[0] and "failing closed" in warnings[1]


def _worker(url: str, barrier: Any, results: Any) -> None:
    async def main() -> int:
        # generous timeout and fail closed: this pins atomic sharing, and on a loaded machine a 0.25 s
        # timeout failing open would let extra requests through
        config = WebConfig(
            rules=[Rule(path="/", rate_limit="100/hour", rate_class="shared")],
            rate_limit_url=url,
            rate_limit_timeout=10.0,
            rate_limit_fail="closed",
        )
        app = RateLimitMiddleware(make_starlette(), config=config, collector=Collector())
        ok = 0
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as c:
            barrier.wait()
            for _ in range(5):
                batch = await asyncio.gather(*(c.get("/") for _ in range(20)))
                ok += sum(r.status_code == 200 for r in batch)
                assert all(r.status_code in (200, 429) for r in batch)
        await app.backend.close()
        return ok

    results.put(asyncio.run(main()))


@pytest.mark.redis
@pytest.mark.slow
@needs_redis
def test_four_processes_share_one_budget(prefix: str) -> None:
    """Four processes hammering one Redis-backed limit of 100 get 100 +-2 % successes in total."""
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(4), ctx.Queue()
    url = f"{REDIS_URL}?prefix={prefix}"
    procs = [ctx.Process(target=_worker, args=(url, barrier, results)) for _ in range(4)]
    for p in procs:
        p.start()
    counts = [results.get(timeout=50) for _ in procs]
    for p in procs:
        p.join(timeout=10)
    assert 98 <= sum(counts) <= 102, counts
    assert len(counts) == 4  # separate budgets would have let 400 through


def test_memory_fast_path_matches_generic_path() -> None:
    """`decide_now` (memory, no coroutine) gives the same decisions and headers as the awaited path."""
    fast = make_app()
    slow = make_app(rate_limit_key=lambda scope: scope["client"][0])  # a key function: `decide` awaits
    scope = {"type": "http", "method": "GET", "path": "/", "headers": [], "client": ("10.0.0.9", 1)}
    assert fast.limiter is not None and slow.limiter is not None
    assert slow.limiter.decide_now(dict(scope)) is None
    fast_answers, slow_answers = [], []
    for _ in range(5):  # 3/minute: three allowed, then refusals
        fast_answers.append(fast.limiter.decide_now(dict(scope)))
        slow_answers.append(asyncio.run(slow.limiter.decide(dict(scope))))
    assert fast_answers == slow_answers
    assert [refusal is None for _, refusal in fast_answers] == [True, True, True, False, False]
    assert (
        fast.limiter.decisions.series
        == slow.limiter.decisions.series
        == {
            ("/", "allowed"): 3.0,
            ("/", "limited"): 2.0,
        }
    )
