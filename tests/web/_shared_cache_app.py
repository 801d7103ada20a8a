"""The app `test_coalesce_processes.py` serves from two uvicorn processes sharing one Redis.

`/report` counts its real runs in Redis (`<prefix>runs`) and answers only once all `PERFKIT_TEST_N`
requests have looked the response up and missed (the cache counts lookups in `<prefix>looked` and pushes
`go` after the last one), so every request is a concurrent miss, in either process. `/me` is the same
with a per-token key (`cache_vary=("authorization",)`); `/me-plain` has a plain rule, so requests with a
token bypass the cache: it answers once all N requests have run it (`<prefix>runs` reaches N).
"""

from __future__ import annotations

import os
from typing import Any

import redis.asyncio as aioredis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import perfkit
from perfkit.cache import Cache
from perfkit.metrics import Collector
from perfkit.web import Rule, WebConfig

URL = os.environ["PERFKIT_TEST_REDIS_URL"]
PREFIX = os.environ["PERFKIT_TEST_PREFIX"]
N = int(os.environ["PERFKIT_TEST_N"])
client = aioredis.Redis.from_url(URL)


async def report(request: Request) -> Response:
    run = await client.incr(PREFIX + "runs")
    await client.blpop([PREFIX + "go"], timeout=30)  # every request has arrived: answer
    return JSONResponse({"run": run, "pid": os.getpid()})


async def me(request: Request) -> Response:
    run = await client.incr(PREFIX + "runs")
    await client.blpop([PREFIX + "go"], timeout=30)
    return JSONResponse({"user": request.headers.get("authorization"), "run": run, "pid": os.getpid()})


async def me_plain(request: Request) -> Response:
    run = await client.incr(PREFIX + "runs")
    if run == N:  # every request runs the endpoint itself: release them all
        await client.rpush(PREFIX + "go", *[1] * N)
    await client.blpop([PREFIX + "go"], timeout=10)  # bounded: coalesced requests would never reach N
    return JSONResponse({"user": request.headers.get("authorization"), "run": run, "pid": os.getpid()})


class CountingCache(Cache):
    """The real Redis cache; response lookups are counted so the endpoint can wait for all of them."""

    async def get(self, key: str, default: Any = None) -> Any:
        value = await super().get(key, default)
        if key.startswith("response:") and await client.incr(PREFIX + "looked") == N:
            await client.rpush(PREFIX + "go", *[1] * N)  # one token per possible run: never a hang
        return value


cache = CountingCache(URL, namespace=PREFIX + "cache")
app = perfkit.instrument(
    Starlette(routes=[Route("/report", report), Route("/me", me), Route("/me-plain", me_plain)]),
    cache=cache,
    config=WebConfig(
        rules=[
            Rule(path="/report", cache_ttl=60),
            Rule(path="/me", cache_ttl=60, cache_vary=("authorization",)),
            Rule(path="/me-plain", cache_ttl=60),
        ]
    ),
    collector=Collector(),
    monitor=False,
)
