"""Redis GCRA: one atomic Lua script using the server clock, so every process shares one budget.

Key names live here and nowhere else; the script is `lua/gcra.lua`. Calls are async (redis.asyncio)
with a timeout, so a slow or dead Redis never blocks the event loop; the middleware then fails open or
closed. The client (one node or, for `redis+cluster://`, a cluster) comes from `perfkit.redisclient`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from perfkit.backends import BackendURL
from perfkit.redisclient import RATELIMIT_ERRORS, Translator, close_client, make_client, ratelimit_options
from perfkit.redisclient.scripts import lua_script
from perfkit.web.config import RateLimit
from perfkit.web.ratelimit.backend import Decision

KEY_PREFIX = "perfkit:rl:"

# lua/gcra.lua: KEYS[1] = the key; ARGV = period (us), interval (us), cost; TIME is the Redis clock
GCRA_LUA = lua_script("perfkit.web.ratelimit", "gcra")


class RedisRateLimit:
    def __init__(self, url: BackendURL, *, timeout: float = 0.25, prefix: str = KEY_PREFIX, **_: Any) -> None:
        self.prefix = url.options.get("prefix", prefix)
        self.timeout = timeout
        self.translate = Translator(url.redacted(), RATELIMIT_ERRORS)
        self.client = make_client(url, ratelimit_options(url, timeout=timeout))
        self.script = self.client.register_script(GCRA_LUA)

    async def hit(self, key: str, limit: RateLimit, cost: int = 1) -> Decision:
        period = int(limit.period * 1_000_000)
        interval = period // limit.limit
        try:
            async with asyncio.timeout(self.timeout):
                raw = await self.script(keys=[self.prefix + key], args=[period, interval, cost])
        except Exception as exc:  # the driver's (and the timeout's): unavailable, so the middleware decides
            error = self.translate(exc)
            if error is exc:
                raise
            raise error from exc
        allowed, remaining, reset_us, retry_us = (int(x) for x in raw)
        return Decision(bool(allowed), remaining, reset_us / 1e6, retry_us / 1e6)

    async def close(self) -> None:
        await close_client(self.client)
