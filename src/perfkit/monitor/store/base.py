"""The one contract of a monitor store: small, so SQLite, Redis and memory implement it the same way."""

from __future__ import annotations

from typing import Any, Protocol

Snapshot = dict[str, Any]
RETIRED = "retired"  # the name `snapshots()` gives the aggregate of the compacted (dead) processes


class MonitorStore(Protocol):
    kind: str

    async def publish(self, proc: str, now: float, snapshot: Snapshot, minute: int, rollup: Snapshot) -> bool:
        """Store `proc`'s cumulative snapshot and its rollup (deltas so far) for `minute`, atomically;
        False (nothing written) if `proc` was compacted as dead: it must publish under a new name."""

    async def snapshots(self) -> list[tuple[str, float, Snapshot]]:
        """Every process's last snapshot: (proc, published at, snapshot), plus (RETIRED, 0.0, the
        aggregate) once dead processes were compacted."""

    async def compact(self, before: float) -> int:
        """Fold the snapshots of processes that last published before `before` into the RETIRED
        aggregate and mark them retired, atomically (safe with several compacting at once); how many."""

    async def rollups(self, first_minute: int, last_minute: int) -> list[tuple[int, Snapshot]]:
        """Rollup rows of every process with first_minute <= minute <= last_minute."""

    async def prune(self, before: float) -> None:
        """Drop rollups and snapshots older than `before` (UNIX seconds): bounded retention."""

    async def get(self, key: str) -> Any:
        """A small JSON value (alert state, deploy marks), or None."""

    async def put(self, key: str, value: Any) -> None: ...

    async def lead(self, name: str, owner: str, ttl: float) -> bool:
        """True if `owner` holds (or just took) the lease `name` for `ttl` seconds: one evaluator."""

    async def ping(self) -> None: ...

    async def close(self) -> None: ...
