"""An in-process monitor store: one process only (tests, single-worker apps)."""

from __future__ import annotations

import time
from typing import Any

from perfkit.backends import BackendURL
from perfkit.monitor.snapshots import retire
from perfkit.monitor.store.base import RETIRED, Snapshot


class MemoryStore:
    kind = "memory"

    def __init__(self, url: BackendURL | None = None, **_: Any) -> None:
        self._snapshots: dict[str, tuple[float, Snapshot]] = {}
        self._rollups: dict[tuple[int, str], Snapshot] = {}
        self._kv: dict[str, Any] = {}
        self._leases: dict[str, tuple[str, float]] = {}
        self._retired: dict[str, float] = {}
        self._aggregate: Snapshot | None = None

    async def publish(self, proc: str, now: float, snapshot: Snapshot, minute: int, rollup: Snapshot) -> bool:
        if proc in self._retired:
            return False
        self._snapshots[proc] = (now, snapshot)
        self._rollups[minute, proc] = rollup
        return True

    async def snapshots(self) -> list[tuple[str, float, Snapshot]]:
        out = [(proc, at, snap) for proc, (at, snap) in self._snapshots.items()]
        return out if self._aggregate is None else [*out, (RETIRED, 0.0, self._aggregate)]

    async def compact(self, before: float) -> int:
        dead = [p for p, (at, _) in self._snapshots.items() if at < before]
        if dead:
            self._aggregate = retire(self._aggregate, [self._snapshots[p][1] for p in dead])
            for proc in dead:
                self._retired[proc] = self._snapshots.pop(proc)[0]
        return len(dead)

    async def rollups(self, first_minute: int, last_minute: int) -> list[tuple[int, Snapshot]]:
        return [(m, r) for (m, _), r in sorted(self._rollups.items()) if first_minute <= m <= last_minute]

    async def prune(self, before: float) -> None:
        for key in [k for k in self._rollups if k[0] * 60 < before]:
            del self._rollups[key]
        for proc in [p for p, (at, _) in self._snapshots.items() if at < before]:
            del self._snapshots[proc]
        for proc in [p for p, at in self._retired.items() if at < before]:
            del self._retired[proc]

    async def get(self, key: str) -> Any:
        return self._kv.get(key)

    async def put(self, key: str, value: Any) -> None:
        self._kv[key] = value

    async def lead(self, name: str, owner: str, ttl: float) -> bool:
        now = time.time()
        holder = self._leases.get(name)
        if holder is None or holder[0] == owner or holder[1] < now:
            self._leases[name] = (owner, now + ttl)
            return True
        return False

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None
