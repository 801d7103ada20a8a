"""A Redis monitor store, for workers on several hosts: one hash of snapshots, one hash per minute.

Keys (all under `prefix`, default `perfkit:monitor:`): `snapshots` (hash proc -> JSON, plus `at:<proc>`),
`rollup:<minute>` (hash proc -> JSON, expiring after the retention), `kv:<key>`, `lease:<name>`.
The client (2 s timeouts per call; a cluster for `redis+cluster://`) comes from `perfkit.redisclient`.
"""

from __future__ import annotations

import json
from typing import Any

from perfkit.backends import BackendURL
from perfkit.monitor.store.base import Snapshot
from perfkit.redisclient import MONITOR_ERRORS, Translator, close_client, make_client, monitor_options
from perfkit.redisclient.scripts import lua_script

_RENEW = lua_script("perfkit.monitor.store", "renew_lease")  # take or renew a lease (lua/renew_lease.lua)


class RedisStore:
    kind = "redis"

    def __init__(self, url: BackendURL, *, retention: float = 7 * 86400, **_: Any) -> None:
        self.prefix = url.options.get("prefix", "perfkit:monitor:")
        self._redis = make_client(url, monitor_options(url))
        self.retention = retention
        self._url = url.redacted()
        self.translate = Translator(self._url, MONITOR_ERRORS)

    def _k(self, name: str) -> str:
        return self.prefix + name

    async def _call(self, coro: Any) -> Any:
        return await self.translate.call(coro)  # any error of a command becomes a BackendError

    async def publish(self, proc: str, now: float, snapshot: Snapshot, minute: int, rollup: Snapshot) -> None:
        pipe = self._redis.pipeline(transaction=False)
        pipe.hset(self._k("snapshots"), proc, json.dumps({"at": now, "data": snapshot}))
        key = self._k(f"rollup:{minute}")
        pipe.hset(key, proc, json.dumps(rollup))
        pipe.expire(key, int(self.retention) + 120)
        pipe.zadd(self._k("minutes"), {str(minute): minute})
        await self._call(pipe.execute())

    async def snapshots(self) -> list[tuple[str, float, Snapshot]]:
        raw = await self._call(self._redis.hgetall(self._k("snapshots")))
        out = []
        for proc, value in raw.items():
            item = json.loads(value)
            out.append((proc.decode(), float(item["at"]), item["data"]))
        return out

    async def rollups(self, first_minute: int, last_minute: int) -> list[tuple[int, Snapshot]]:
        minutes = await self._call(self._redis.zrangebyscore(self._k("minutes"), first_minute, last_minute))
        pipe = self._redis.pipeline(transaction=False)
        for m in minutes:
            pipe.hvals(self._k(f"rollup:{int(m)}"))
        rows = await self._call(pipe.execute()) if minutes else []
        return [(int(m), json.loads(v)) for m, values in zip(minutes, rows, strict=True) for v in values]

    async def prune(self, before: float) -> None:
        minute = int(before // 60)
        old = await self._call(self._redis.zrangebyscore(self._k("minutes"), "-inf", minute - 1))
        if old:
            await self._call(self._redis.delete(*[self._k(f"rollup:{int(m)}") for m in old]))
            await self._call(self._redis.zremrangebyscore(self._k("minutes"), "-inf", minute - 1))
        stale = [p for p, at, _ in await self.snapshots() if at < before]
        if stale:
            await self._call(self._redis.hdel(self._k("snapshots"), *stale))

    async def get(self, key: str) -> Any:
        value = await self._call(self._redis.get(self._k(f"kv:{key}")))
        return None if value is None else json.loads(value)

    async def put(self, key: str, value: Any) -> None:
        await self._call(self._redis.set(self._k(f"kv:{key}"), json.dumps(value)))

    async def lead(self, name: str, owner: str, ttl: float) -> bool:
        result = await self._call(
            self._redis.eval(_RENEW, 1, self._k(f"lease:{name}"), owner, str(int(ttl * 1000)))
        )
        return bool(result)

    async def ping(self) -> None:
        await self._call(self._redis.ping())

    async def drop(self) -> None:
        """Delete every key under this store's prefix (tests use a prefix of their own)."""
        keys = [k async for k in self._redis.scan_iter(match=self.prefix + "*", count=500)]
        if keys:
            await self._call(self._redis.delete(*keys))

    async def close(self) -> None:
        await close_client(self._redis)
