"""SQLite job backend: one file in WAL mode, shared by several worker processes on one machine.

Every call runs on one dedicated thread holding one connection (sqlite3 connections are not
thread-safe). A claim is one `UPDATE ... RETURNING` over the ready index, so concurrent workers never
take the same job; the busy timeout makes writers queue instead of failing. Idle workers watch
`PRAGMA data_version` (changes when another connection commits): no query runs until something changed.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from perfkit.backends import BackendURL
from perfkit.errors import BackendError, BackendUnavailableError
from perfkit.jobs.backends._pipeline import EnqueuePipeline
from perfkit.jobs.backends._sql import (
    COLUMNS,
    SELECT_LIST,
    TERMINAL,
    record_from_row,
    row_from_record,
    status_filter,
    table_name,
)
from perfkit.jobs.models import MAX_STALLS, JobRecord, Outcome, Status
from perfkit.sqlite import enable_wal

T = TypeVar("T")
_IDLE_POLL = 0.005


class SQLiteBackend:
    kind = "sqlite"

    def __init__(self, url: BackendURL, *, busy_timeout: float = 10.0, retention: float = 0.0) -> None:
        path = url.path[1:] if url.path.startswith("/") else url.path
        self.path = path or ":memory:"
        self.url = url
        self.table = table_name(url.options)
        self._busy_ms = int(busy_timeout * 1000)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="perfkit-jobs-sqlite")
        self._conn: sqlite3.Connection | None = None
        self._local = asyncio.Event()
        self._ready_sql: dict[int, str] = {}
        self._pipeline = EnqueuePipeline(self.enqueue_many)

    # -- plumbing ------------------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            if self.path != ":memory:" and os.path.dirname(self.path):
                os.makedirs(os.path.dirname(self.path), exist_ok=True)
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
            enable_wal(conn, self._busy_ms / 1000)
            conn.execute("PRAGMA synchronous = NORMAL")
            t = self.table
            conn.executescript(f"""
                CREATE TABLE IF NOT EXISTS {t} (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, queue TEXT NOT NULL,
                    task TEXT NOT NULL, payload BLOB NOT NULL, priority INTEGER NOT NULL,
                    status TEXT NOT NULL, attempts INTEGER NOT NULL, max_attempts INTEGER NOT NULL,
                    timeout REAL, key TEXT, run_at REAL NOT NULL, queued_at REAL NOT NULL, started_at REAL,
                    completed_at REAL, progress REAL NOT NULL DEFAULT 0, progress_message TEXT, result BLOB,
                    error TEXT, traceback TEXT, token INTEGER NOT NULL DEFAULT 0, lease_until REAL,
                    cancel_requested INTEGER NOT NULL DEFAULT 0, stalls INTEGER NOT NULL DEFAULT 0);
                CREATE INDEX IF NOT EXISTS {t}_ready ON {t} (queue, priority, seq) WHERE status = 'queued';
                CREATE INDEX IF NOT EXISTS {t}_leases ON {t} (lease_until) WHERE status = 'running';
                CREATE INDEX IF NOT EXISTS {t}_done ON {t} (completed_at) WHERE completed_at IS NOT NULL;
                CREATE INDEX IF NOT EXISTS {t}_status ON {t} (status, queue, seq);
                CREATE UNIQUE INDEX IF NOT EXISTS {t}_key ON {t} (queue, key)
                    WHERE key IS NOT NULL AND status IN ('queued', 'running');
                CREATE TABLE IF NOT EXISTS {t}_once (name TEXT PRIMARY KEY, until REAL NOT NULL);
            """)
            self._conn = conn
        return self._conn

    async def _run(self, func: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            conn = self._connect()
            try:
                return func(conn)
            except sqlite3.OperationalError as exc:
                if conn.in_transaction:
                    conn.rollback()
                if "locked" in str(exc) or "busy" in str(exc):
                    raise BackendUnavailableError(f"SQLite {self.path!r} stayed locked: {exc}") from exc
                raise BackendError(f"SQLite {self.path!r}: {exc}") from exc
            except BaseException:
                if conn.in_transaction:
                    conn.rollback()
                raise

        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    # -- the contract --------------------------------------------------------------------------------
    async def enqueue(self, record: JobRecord) -> tuple[str, bool]:
        """One job; enqueues issued while others are in flight share one transaction (autopipelining)."""
        return await self._pipeline.enqueue(record, self._enqueue_one)

    async def _enqueue_one(self, record: JobRecord) -> tuple[str, bool]:
        return (await self.enqueue_many([record]))[0]

    async def enqueue_many(self, records: Sequence[JobRecord]) -> list[tuple[str, bool]]:
        t = self.table
        insert = f"INSERT INTO {t} ({SELECT_LIST}) VALUES ({', '.join('?' * len(COLUMNS))})"
        held = f"SELECT id FROM {t} WHERE queue = ? AND key = ? AND status IN ('queued', 'running')"

        def one(conn: sqlite3.Connection, record: JobRecord) -> tuple[str, bool]:
            row = row_from_record(record)
            try:
                conn.execute(insert, row)
                return record.id, True
            except sqlite3.IntegrityError:
                if record.key is None:
                    raise
                found = conn.execute(held, (record.queue, record.key)).fetchone()
                if found is None:  # the holder finished between the two statements: try once more
                    conn.execute(insert, row)
                    return record.id, True
                return str(found[0]), False

        def op(conn: sqlite3.Connection) -> list[tuple[str, bool]]:
            if len(records) == 1:
                return [one(conn, records[0])]
            conn.execute("BEGIN IMMEDIATE")
            out = [one(conn, r) for r in records]
            conn.execute("COMMIT")
            return out

        result = await self._run(op)
        self._local.set()
        return result

    def _claim_sql(self, n_queues: int) -> str:
        sql = self._ready_sql.get(n_queues)
        if sql is None:  # a run_at that is not a number (a corrupt row) is due: claimed, then dead-lettered
            t = self.table
            where = "queue = ?" if n_queues == 1 else f"queue IN ({', '.join('?' * n_queues)})"
            sql = (
                f"UPDATE {t} SET status = 'running', attempts = attempts + 1, token = attempts + 1, "
                f"started_at = ?, lease_until = ? WHERE seq IN (SELECT seq FROM {t} WHERE status = 'queued' "
                f"AND {where} AND (run_at <= ? OR typeof(run_at) NOT IN ('real', 'integer')) "
                f"ORDER BY priority, seq LIMIT ?) "
                f"RETURNING priority, seq, {SELECT_LIST}"
            )
            self._ready_sql[n_queues] = sql
        return sql

    async def claim(
        self, queues: Sequence[str], limit: int, lease: float, now: float, finish: Sequence[Outcome] = ()
    ) -> list[JobRecord]:
        if finish:
            await self.finish(finish)
        sql = self._claim_sql(len(queues))
        params = (now, now + lease, *queues, now, limit)

        def op(conn: sqlite3.Connection) -> list[JobRecord]:
            rows = conn.execute(sql, params).fetchall()
            rows.sort(key=lambda r: (r[0], r[1]))
            return [record_from_row(r[2:]) for r in rows]

        return await self._run(op)

    async def wait(self, queues: Sequence[str], idle: float) -> None:
        if self._local.is_set():  # this process enqueued since the last wait
            self._local.clear()
            return
        deadline = time.monotonic() + idle

        def version(conn: sqlite3.Connection) -> int:
            return int(conn.execute("PRAGMA data_version").fetchone()[0])

        start = await self._run(version)
        while time.monotonic() < deadline:
            try:
                await asyncio.wait_for(self._local.wait(), _IDLE_POLL)
                self._local.clear()
                return
            except TimeoutError:
                pass
            if await self._run(version) != start:
                return

    async def renew(self, leases: Sequence[tuple[str, int]], lease: float, now: float) -> set[str]:
        if not leases:
            return set()
        t = self.table
        tokens = dict(leases)

        def op(conn: sqlite3.Connection) -> set[str]:
            conn.execute("BEGIN IMMEDIATE")
            marks = ", ".join("?" * len(tokens))
            rows = conn.execute(
                f"SELECT id, token, status, cancel_requested FROM {t} WHERE id IN ({marks})", list(tokens)
            ).fetchall()
            keep = {r[0] for r in rows if r[2] == "running" and r[1] == tokens[r[0]] and not r[3]}
            conn.executemany(f"UPDATE {t} SET lease_until = ? WHERE id = ?", [(now + lease, i) for i in keep])
            conn.execute("COMMIT")
            return set(tokens) - keep

        return await self._run(op)

    async def release(self, leases: Sequence[tuple[str, int]], now: float) -> None:
        t = self.table
        sql = (
            f"UPDATE {t} SET status = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'queued' END, "
            f"completed_at = CASE WHEN cancel_requested THEN ? ELSE NULL END, "
            f"attempts = attempts - 1, lease_until = NULL, started_at = NULL, run_at = ? "
            f"WHERE id = ? AND token = ? AND status = 'running'"
        )

        def op(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(sql, [(now, now, i, tok) for i, tok in leases])
            conn.execute("COMMIT")

        await self._run(op)
        self._local.set()

    async def finish(self, outcomes: Sequence[Outcome]) -> None:
        t = self.table
        sql = (
            f"UPDATE {t} SET status = ?, result = ?, error = ?, traceback = ?, completed_at = ?, "
            f"run_at = CASE WHEN ? = 'queued' THEN ? ELSE run_at END, lease_until = NULL, "
            f"progress = CASE WHEN ? = 'succeeded' THEN 1.0 ELSE progress END "
            f"WHERE id = ? AND token = ? AND status = 'running'"
        )
        rows = [
            (
                o.status.value, o.result, o.error, o.traceback,
                None if o.status is Status.QUEUED else o.completed_at,
                o.status.value, o.run_at, o.status.value, o.id, o.token,
            )
            for o in outcomes
        ]  # fmt: skip

        def op(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(sql, rows)
            conn.execute("COMMIT")

        await self._run(op)
        if any(o.status is Status.QUEUED for o in outcomes):
            self._local.set()

    async def reap(self, queues: Sequence[str], now: float) -> list[JobRecord]:
        t = self.table
        marks = ", ".join("?" * len(queues))

        def op(conn: sqlite3.Connection) -> list[JobRecord]:
            conn.execute("BEGIN IMMEDIATE")
            rows = conn.execute(
                f"SELECT {SELECT_LIST} FROM {t} WHERE status = 'running' AND lease_until < ? "
                f"AND queue IN ({marks})",
                (now, *queues),
            ).fetchall()
            dead: list[JobRecord] = []
            for rec in map(record_from_row, rows):
                rec.stalls += 1
                if rec.cancel_requested:
                    rec.status, rec.completed_at = Status.CANCELLED, now
                elif rec.stalls >= MAX_STALLS:
                    rec.status, rec.completed_at = Status.DEAD, now
                    rec.error = f"lease lapsed {rec.stalls} times: its worker died or hung each time"
                    dead.append(rec)
                else:
                    rec.status = Status.QUEUED
                conn.execute(
                    f"UPDATE {t} SET status = ?, completed_at = ?, error = COALESCE(?, error), stalls = ?, "
                    f"run_at = ?, lease_until = NULL WHERE id = ? AND token = ?",
                    (rec.status, rec.completed_at, rec.error, rec.stalls, rec.run_at, rec.id, rec.token),
                )
            conn.execute("COMMIT")
            return dead

        return await self._run(op)

    async def get(self, job_id: str) -> JobRecord | None:
        sql = f"SELECT {SELECT_LIST} FROM {self.table} WHERE id = ?"

        def op(conn: sqlite3.Connection) -> JobRecord | None:
            row = conn.execute(sql, (job_id,)).fetchone()
            return None if row is None else record_from_row(row)

        return await self._run(op)

    async def list(
        self, status: Status | None, queue: str | None, limit: int, cursor: str | None
    ) -> tuple[list[JobRecord], str | None]:
        where, params = status_filter(status, time.time())
        clauses = [where] if where else []
        if queue is not None:
            clauses.append("queue = ?")
            params.append(queue)
        if cursor is not None:
            clauses.append("seq < ?")
            params.append(int(cursor))
        sql = (
            f"SELECT seq, {SELECT_LIST} FROM {self.table} "
            f"{'WHERE ' + ' AND '.join(clauses) if clauses else ''} ORDER BY seq DESC LIMIT ?"
        )
        params.append(limit)

        def op(conn: sqlite3.Connection) -> tuple[list[JobRecord], str | None]:
            rows = conn.execute(sql, params).fetchall()
            nxt = str(rows[-1][0]) if len(rows) == limit else None
            return [record_from_row(r[1:]) for r in rows], nxt

        return await self._run(op)

    async def cancel(self, job_id: str, now: float) -> JobRecord | None:
        t = self.table

        def op(conn: sqlite3.Connection) -> JobRecord | None:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                f"UPDATE {t} SET status = 'cancelled', completed_at = ? WHERE id = ? AND status = 'queued'",
                (now, job_id),
            )
            conn.execute(
                f"UPDATE {t} SET cancel_requested = 1 WHERE id = ? AND status = 'running'", (job_id,)
            )
            row = conn.execute(f"SELECT {SELECT_LIST} FROM {t} WHERE id = ?", (job_id,)).fetchone()
            conn.execute("COMMIT")
            return None if row is None else record_from_row(row)

        return await self._run(op)

    async def retry(self, job_id: str, now: float) -> bool:
        t = self.table
        sql = (
            f"UPDATE {t} SET status = 'queued', attempts = 0, stalls = 0, run_at = ?, completed_at = NULL, "
            f"started_at = NULL, result = NULL, cancel_requested = 0, progress = 0, progress_message = NULL "
            f"WHERE id = ? AND status IN ('failed', 'dead', 'cancelled')"
        )

        def op(conn: sqlite3.Connection) -> bool:
            try:
                changed = conn.execute(sql, (now, job_id)).rowcount
            except sqlite3.IntegrityError:  # its key is held by a newer job: retry it without the key
                conn.execute(f"UPDATE {t} SET key = NULL WHERE id = ?", (job_id,))
                changed = conn.execute(sql, (now, job_id)).rowcount
            return changed == 1

        done = await self._run(op)
        self._local.set()
        return done

    async def progress(self, job_id: str, value: float, message: str | None) -> None:
        sql = f"UPDATE {self.table} SET progress = ?, progress_message = ? WHERE id = ?"
        await self._run(lambda conn: conn.execute(sql, (value, message, job_id)))

    async def cleanup(self, before: float) -> int:
        await self._run(
            lambda conn: conn.execute(f"DELETE FROM {self.table}_once WHERE until < ?", (before,))
        )
        marks = ", ".join("?" * len(TERMINAL))
        sql = f"DELETE FROM {self.table} WHERE completed_at < ? AND status IN ({marks})"
        return await self._run(lambda conn: conn.execute(sql, (before, *TERMINAL)).rowcount)

    async def depth(self) -> dict[tuple[str, int], int]:
        sql = (
            f"SELECT queue, priority, count(*) FROM {self.table} WHERE status = 'queued' "
            f"GROUP BY queue, priority"
        )
        rows: list[Any] = await self._run(lambda conn: conn.execute(sql).fetchall())
        return {(r[0], int(r[1])): int(r[2]) for r in rows}

    async def claim_once(self, name: str, ttl: float) -> bool:
        now = time.time()
        sql = (
            f"INSERT INTO {self.table}_once (name, until) VALUES (?, ?) ON CONFLICT (name) "
            f"DO UPDATE SET until = excluded.until WHERE {self.table}_once.until < ?"
        )
        return bool(await self._run(lambda conn: conn.execute(sql, (name, now + ttl, now)).rowcount == 1))

    async def close(self) -> None:
        await self._pipeline.close()

        def op() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        await asyncio.get_running_loop().run_in_executor(self._executor, op)
        self._executor.shutdown(wait=False)
