"""The embedded default: one SQLite file (WAL) that every worker process on the host shares.

Each process writes only its own rows (its snapshot, its rollup for the current minute), so writers never
contend on a row; readers merge. Calls run in a worker thread: SQLite is blocking.

Compaction folds the rows of dead processes into one aggregate row (`perfkit_aggregate`) and records
their names (`perfkit_retired`) in one `BEGIN IMMEDIATE` transaction: compactors and publishers
serialise on the write lock, so a row is folded once, and a retired process cannot publish again under
its old name (its `publish` answers False inside the same kind of transaction).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from perfkit.backends import BackendURL
from perfkit.errors import BackendError
from perfkit.monitor.snapshots import retire
from perfkit.monitor.store.base import RETIRED, Snapshot
from perfkit.sqlite import enable_wal

_SCHEMA = """
CREATE TABLE IF NOT EXISTS perfkit_snapshots (proc TEXT PRIMARY KEY, at REAL NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS perfkit_rollups (
    minute INTEGER NOT NULL, proc TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (minute, proc));
CREATE TABLE IF NOT EXISTS perfkit_kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS perfkit_leases (name TEXT PRIMARY KEY, owner TEXT NOT NULL, until REAL NOT NULL);
CREATE TABLE IF NOT EXISTS perfkit_retired (proc TEXT PRIMARY KEY, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS perfkit_aggregate (name TEXT PRIMARY KEY, data TEXT NOT NULL);
"""


class SQLiteStore:
    kind = "sqlite"

    def __init__(self, url: BackendURL, **_: Any) -> None:
        path = url.path[1:] if url.path.startswith("/") else url.path
        if url.host:  # sqlite://relative/path is a common slip: treat host+path as the path
            path = url.host + url.path
        self.path = path or ".perfkit/monitor.db"
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=5, check_same_thread=False, isolation_level=None)
            enable_wal(conn)
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(_SCHEMA)
            self._conn = conn
        return self._conn

    async def _run(self, fn: Any, *args: Any) -> Any:
        def call() -> Any:
            with self._lock:
                try:
                    return fn(self._db(), *args)
                except sqlite3.Error as exc:
                    raise BackendError(f"monitor store {self.path}: {exc}") from exc

        return await asyncio.to_thread(call)

    async def publish(self, proc: str, now: float, snapshot: Snapshot, minute: int, rollup: Snapshot) -> bool:
        def write(db: sqlite3.Connection) -> bool:
            with db:
                db.execute("BEGIN IMMEDIATE")
                if db.execute("SELECT 1 FROM perfkit_retired WHERE proc = ?", (proc,)).fetchone():
                    return False
                db.execute(
                    "INSERT INTO perfkit_snapshots VALUES (?, ?, ?) ON CONFLICT(proc) DO UPDATE "
                    "SET at = excluded.at, data = excluded.data",
                    (proc, now, json.dumps(snapshot)),
                )
                db.execute(
                    "INSERT INTO perfkit_rollups VALUES (?, ?, ?) ON CONFLICT(minute, proc) DO UPDATE "
                    "SET data = excluded.data",
                    (minute, proc, json.dumps(rollup)),
                )
                return True

        written: bool = await self._run(write)
        return written

    async def snapshots(self) -> list[tuple[str, float, Snapshot]]:
        def read(db: sqlite3.Connection) -> list[Any]:
            with db:  # one read transaction: the rows and the aggregate as of one moment
                db.execute("BEGIN")
                rows = db.execute("SELECT proc, at, data FROM perfkit_snapshots").fetchall()
                agg = db.execute("SELECT data FROM perfkit_aggregate WHERE name = ?", (RETIRED,)).fetchone()
            return rows + ([(RETIRED, 0.0, agg[0])] if agg else [])

        return [(proc, at, json.loads(data)) for proc, at, data in await self._run(read)]

    async def compact(self, before: float) -> int:
        def fold(db: sqlite3.Connection) -> int:
            with db:
                db.execute("BEGIN IMMEDIATE")
                dead = db.execute(
                    "SELECT proc, at, data FROM perfkit_snapshots WHERE at < ?", (before,)
                ).fetchall()
                if not dead:
                    return 0
                row = db.execute("SELECT data FROM perfkit_aggregate WHERE name = ?", (RETIRED,)).fetchone()
                total = retire(json.loads(row[0]) if row else None, [json.loads(d) for _, _, d in dead])
                db.execute(
                    "INSERT INTO perfkit_aggregate VALUES (?, ?) "
                    "ON CONFLICT(name) DO UPDATE SET data = excluded.data",
                    (RETIRED, json.dumps(total)),
                )
                db.executemany(
                    "INSERT OR REPLACE INTO perfkit_retired VALUES (?, ?)", [(p, at) for p, at, _ in dead]
                )
                db.execute("DELETE FROM perfkit_snapshots WHERE at < ?", (before,))
                return len(dead)

        count: int = await self._run(fold)
        return count

    async def rollups(self, first_minute: int, last_minute: int) -> list[tuple[int, Snapshot]]:
        rows = await self._run(
            lambda db: db.execute(
                "SELECT minute, data FROM perfkit_rollups WHERE minute BETWEEN ? AND ? ORDER BY minute",
                (first_minute, last_minute),
            ).fetchall()
        )
        return [(minute, json.loads(data)) for minute, data in rows]

    async def prune(self, before: float) -> None:
        def delete(db: sqlite3.Connection) -> None:
            with db:
                db.execute("DELETE FROM perfkit_rollups WHERE minute < ?", (int(before // 60),))
                db.execute("DELETE FROM perfkit_snapshots WHERE at < ?", (before,))
                db.execute("DELETE FROM perfkit_retired WHERE at < ?", (before,))

        await self._run(delete)

    async def get(self, key: str) -> Any:
        row = await self._run(
            lambda db: db.execute("SELECT value FROM perfkit_kv WHERE key = ?", (key,)).fetchone()
        )
        return None if row is None else json.loads(row[0])

    async def put(self, key: str, value: Any) -> None:
        await self._run(
            lambda db: db.execute(
                "INSERT INTO perfkit_kv VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, json.dumps(value)),
            )
        )

    async def lead(self, name: str, owner: str, ttl: float) -> bool:
        def take(db: sqlite3.Connection) -> bool:
            now = time.time()
            cursor = db.execute(
                "INSERT INTO perfkit_leases VALUES (?, ?, ?) ON CONFLICT(name) DO UPDATE "
                "SET owner = excluded.owner, until = excluded.until "
                "WHERE perfkit_leases.owner = excluded.owner OR perfkit_leases.until < ?",
                (name, owner, now + ttl, now),
            )
            return bool(cursor.rowcount)

        result: bool = await self._run(take)
        return result

    async def ping(self) -> None:
        await self._run(lambda db: db.execute("SELECT 1").fetchone())

    async def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
