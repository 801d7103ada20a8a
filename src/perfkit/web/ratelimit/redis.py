"""Redis GCRA: one atomic Lua script using the server clock, so every process shares one budget.

Key names and the script live here and nowhere else. Calls are async (redis.asyncio) with a timeout,
so a slow or dead Redis never blocks the event loop; the middleware then fails open or closed. The
client (one node or, for `redis+cluster://`, a cluster) comes from `perfkit.redisclient`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from perfkit.backends import BackendURL
from perfkit.redisclient import RATELIMIT_ERRORS, Translator, close_client, make_client, ratelimit_options
from perfkit.web.config import RateLimit
from perfkit.web.ratelimit.backend import Decision

KEY_PREFIX = "perfkit:rl:"

# KEYS[1] = the key; ARGV = period (us), interval (us), cost. Returns {allowed, remaining, reset_us,
# retry_us}. TIME is the Redis clock, shared by all clients; microseconds fit a Lua double exactly.
GCRA_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local period = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then tat = now end
local new_tat = tat + interval * cost
local allow_at = new_tat - period
if allow_at > now then
  return {0, 0, tat - now, allow_at - now}
end
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, math.floor((now - allow_at) / interval), new_tat - now, 0}
"""


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
