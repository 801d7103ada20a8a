"""A Redis monitor store, for workers on several hosts: one hash of snapshots, one hash per minute.

Keys (all under `prefix`, default `perfkit:monitor:`): `snapshots` (hash proc -> JSON {at, data}),
`rollup:<minute>` (hash proc -> JSON, expiring after the retention), `minutes` (zset), `kv:<key>`,
`lease:<name>`, and for compaction `retired` (zset proc -> last publication) and `retired:snapshot`
(the aggregate of the dead processes, JSON). Publishing, folding and reading the snapshots with the
aggregate are Lua scripts (`lua/publish.lua`, `lua/compact.lua`, `lua/snapshots.lua`): a publish of a
retired process writes nothing, and a fold checks that the aggregate and each snapshot it folds are
still what it read (optimistic, per key: live workers publishing other fields of the hash do not make it
retry), folding at most `COMPACT_BATCH` processes per script call.
The client (2 s timeouts per call; a cluster for `redis+cluster://`) comes from `perfkit.redisclient`.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from perfkit.backends import BackendURL
from perfkit.monitor.snapshots import retire
from perfkit.monitor.store.base import RETIRED, Snapshot
from perfkit.redisclient import MONITOR_ERRORS, Translator, close_client, make_client, monitor_options
from perfkit.redisclient.scripts import lua_script

_RENEW = lua_script("perfkit.monitor.store", "renew_lease")  # take or renew a lease (lua/renew_lease.lua)
_PUBLISH = lua_script("perfkit.monitor.store", "publish")
_COMPACT = lua_script("perfkit.monitor.store", "compact")
_SNAPSHOTS = lua_script("perfkit.monitor.store", "snapshots")
COMPACT_BATCH = 200  # dead processes folded per script call: bounds the time Redis is busy with one
COMPACT_TRIES = 5


def _dead(items: list[tuple[bytes, bytes]], before: float) -> list[tuple[bytes, bytes, float, Snapshot]]:
    """(proc, raw value, published at, snapshot) of the entries published before `before`."""
    out = []
    for proc, value in items:
        item = json.loads(value)
        if float(item["at"]) < before:
            out.append((proc, value, float(item["at"]), item["data"]))
    return out


def _fold(current: bytes | None, batch: list[tuple[bytes, bytes, float, Snapshot]]) -> str:
    return json.dumps(retire(None if current is None else json.loads(current), [b[3] for b in batch]))


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

    async def publish(self, proc: str, now: float, snapshot: Snapshot, minute: int, rollup: Snapshot) -> bool:
        keys = [self._k("snapshots"), self._k(f"rollup:{minute}"), self._k("minutes"), self._k("retired")]
        args = [proc, json.dumps({"at": now, "data": snapshot}), json.dumps(rollup)]
        written = await self._call(
            self._redis.eval(_PUBLISH, len(keys), *keys, *args, str(int(self.retention) + 120), str(minute))
        )
        return bool(written)

    async def snapshots(self) -> list[tuple[str, float, Snapshot]]:
        keys = [self._k("snapshots"), self._k("retired:snapshot")]
        flat, aggregate = await self._call(self._redis.eval(_SNAPSHOTS, len(keys), *keys))
        out = []
        for proc, value in zip(flat[::2], flat[1::2], strict=True):
            item = json.loads(value)
            out.append((proc.decode(), float(item["at"]), item["data"]))
        if aggregate is not None:
            out.append((RETIRED, 0.0, json.loads(aggregate)))
        return out

    async def compact(self, before: float) -> int:
        raw = await self._call(self._redis.hgetall(self._k("snapshots")))
        dead = await asyncio.to_thread(_dead, list(raw.items()), before)  # parsing: off the event loop
        keys = [self._k("snapshots"), self._k("retired"), self._k("retired:snapshot")]
        folded = 0
        for start in range(0, len(dead), COMPACT_BATCH):
            batch = dead[start : start + COMPACT_BATCH]
            for _ in range(COMPACT_TRIES):
                current = await self._call(self._redis.get(keys[2]))
                total = await asyncio.to_thread(_fold, current, batch)
                args: list[Any] = [current or b"", total]
                for proc, value, at, _ in batch:
                    args += [proc, value, repr(at)]
                if await self._call(self._redis.eval(_COMPACT, len(keys), *keys, *args)):
                    folded += len(batch)
                    break
                # something changed under us: re-read the batch (a process may have published again)
                fresh = await self._call(self._redis.hmget(keys[0], [b[0] for b in batch]))
                pairs = [(b[0], v) for b, v in zip(batch, fresh, strict=True) if v is not None]
                batch = await asyncio.to_thread(_dead, pairs, before)
                if not batch:
                    break
        return folded

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
        await self._call(self._redis.zremrangebyscore(self._k("retired"), "-inf", f"({before!r}"))

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
