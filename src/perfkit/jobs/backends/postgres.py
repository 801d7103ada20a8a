"""PostgreSQL job backend (asyncpg): `FOR UPDATE SKIP LOCKED` claims and LISTEN/NOTIFY wake-up.

Many workers on many machines claim batches concurrently without blocking each other: a claim locks
the rows it takes and skips rows other claims hold. Enqueue notifies on the table's channel in the
same statement, so idle workers wake at once instead of polling. Batches of outcomes and lease
renewals are one statement each (`unnest` over arrays).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from perfkit.backends import BackendURL
from perfkit.errors import BackendError, BackendUnavailableError
from perfkit.jobs.backends._pipeline import EnqueuePipeline
from perfkit.jobs.backends._sql import COLUMNS, SELECT_LIST, TERMINAL, record_from_row, table_name
from perfkit.jobs.models import MAX_STALLS, JobRecord, Outcome, Status

T = TypeVar("T")
_OUR_OPTIONS = {"table", "pool_size"}
_UNAVAILABLE = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,  # pg_terminate_backend, admin shutdown
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.InternalClientError,  # a connection killed under a query, seen on the pool's reset
)


def _driver_dsn(url: BackendURL) -> str:
    parts = urlsplit(url.raw)
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k not in _OUR_OPTIONS])
    scheme = "postgresql"
    return urlunsplit(parts._replace(scheme=scheme, query=query))


class PostgresBackend:
    kind = "postgres"

    def __init__(self, url: BackendURL, *, retention: float = 0.0, pool_size: int | None = None) -> None:
        self.url = url
        self.table = table_name(url.options)
        self.channel = self.table
        self._dsn = _driver_dsn(url)
        self._pool_size = pool_size or int(url.options.get("pool_size", "8"))
        self._pool: asyncpg.Pool | None = None
        self._pool_lock = asyncio.Lock()
        self._listener: asyncpg.Connection | None = None
        self._notified = asyncio.Event()
        self._pipeline = EnqueuePipeline(self.enqueue_many)
        t = self.table
        # a NaN run_at (a corrupt row: NaN sorts above every time) is due: claimed, then dead-lettered
        self._sql_claim: dict[bool, str] = {
            single: (
                f"UPDATE {t} AS j SET status = 'running', attempts = j.attempts + 1, token = j.attempts + 1, "
                f"started_at = $1, lease_until = $2 FROM (SELECT seq FROM {t} WHERE status = 'queued' AND "
                f"{'queue = $3' if single else 'queue = ANY($3::text[])'} "
                f"AND (run_at <= $1 OR run_at = 'NaN') "
                f"ORDER BY priority, seq LIMIT $4 FOR UPDATE SKIP LOCKED) AS s WHERE j.seq = s.seq "
                f"RETURNING j.priority, j.seq, {', '.join('j.' + c for c in COLUMNS)}"
            )
            for single in (True, False)
        }
        marks = ", ".join(f"${i + 1}" for i in range(len(COLUMNS)))
        self._sql_insert = (
            f"WITH ins AS (INSERT INTO {t} ({SELECT_LIST}) VALUES ({marks}) ON CONFLICT (queue, key) "
            f"WHERE key IS NOT NULL AND status IN ('queued', 'running') DO NOTHING RETURNING id) "
            f"SELECT id, pg_notify('{self.channel}', '') FROM ins"
        )

    # -- plumbing ------------------------------------------------------------------------------------
    async def _get_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            async with self._pool_lock:
                if self._pool is None:
                    pool = await asyncpg.create_pool(
                        self._dsn, min_size=1, max_size=self._pool_size, command_timeout=30, timeout=10
                    )
                    async with pool.acquire() as conn, conn.transaction():
                        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", self.table)
                        await conn.execute(self._schema())
                    self._pool = pool
        return self._pool

    def _schema(self) -> str:
        t = self.table
        return f"""
            CREATE TABLE IF NOT EXISTS {t} (
                seq BIGSERIAL PRIMARY KEY, id TEXT NOT NULL UNIQUE, queue TEXT NOT NULL, task TEXT NOT NULL,
                payload BYTEA NOT NULL, priority SMALLINT NOT NULL, status TEXT NOT NULL,
                attempts INTEGER NOT NULL, max_attempts INTEGER NOT NULL, timeout DOUBLE PRECISION, key TEXT,
                run_at DOUBLE PRECISION NOT NULL, queued_at DOUBLE PRECISION NOT NULL,
                started_at DOUBLE PRECISION, completed_at DOUBLE PRECISION,
                progress DOUBLE PRECISION NOT NULL DEFAULT 0, progress_message TEXT, result BYTEA, error TEXT,
                traceback TEXT, token INTEGER NOT NULL DEFAULT 0, lease_until DOUBLE PRECISION,
                cancel_requested BOOLEAN NOT NULL DEFAULT false, stalls INTEGER NOT NULL DEFAULT 0);
            CREATE INDEX IF NOT EXISTS {t}_ready ON {t} (queue, priority, seq) WHERE status = 'queued';
            CREATE INDEX IF NOT EXISTS {t}_leases ON {t} (lease_until) WHERE status = 'running';
            CREATE INDEX IF NOT EXISTS {t}_done ON {t} (completed_at) WHERE completed_at IS NOT NULL;
            CREATE INDEX IF NOT EXISTS {t}_status ON {t} (status, queue, seq);
            CREATE UNIQUE INDEX IF NOT EXISTS {t}_key ON {t} (queue, key)
                WHERE key IS NOT NULL AND status IN ('queued', 'running');
            CREATE TABLE IF NOT EXISTS {t}_once (name TEXT PRIMARY KEY, until DOUBLE PRECISION NOT NULL);
        """

    async def _run(self, op: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        try:
            pool = await self._get_pool()
            async with pool.acquire() as conn:
                return await op(conn)
        except _UNAVAILABLE as exc:
            raise BackendUnavailableError(f"PostgreSQL {self.url.redacted()} unavailable: {exc}") from exc
        except asyncpg.PostgresError as exc:
            raise BackendError(f"PostgreSQL {self.url.redacted()}: {exc}") from exc

    async def _fetch(self, sql: str, *args: Any) -> list[Any]:
        return await self._run(lambda conn: conn.fetch(sql, *args))

    async def _execute(self, sql: str, *args: Any) -> str:
        return await self._run(lambda conn: conn.execute(sql, *args))

    # -- the contract --------------------------------------------------------------------------------
    async def enqueue(self, record: JobRecord) -> tuple[str, bool]:
        """One job; enqueues issued while others are in flight share one transaction (autopipelining)."""
        return await self._pipeline.enqueue(record, self._enqueue_one)

    async def _enqueue_one(self, record: JobRecord) -> tuple[str, bool]:
        return (await self.enqueue_many([record]))[0]

    async def enqueue_many(self, records: Sequence[JobRecord]) -> list[tuple[str, bool]]:
        held = (
            f"SELECT id FROM {self.table} WHERE queue = $1 AND key = $2 AND status IN ('queued', 'running')"
        )

        async def one(conn: asyncpg.Connection, record: JobRecord) -> tuple[str, bool]:
            row = tuple(getattr(record, c) for c in COLUMNS)
            for _ in range(3):
                if await conn.fetch(self._sql_insert, *row):
                    return record.id, True
                found = await conn.fetch(held, record.queue, record.key)
                if found:
                    return str(found[0][0]), False
            raise BackendError(f"enqueue with key {record.key!r} kept conflicting")  # pragma: no cover

        async def op(conn: asyncpg.Connection) -> list[tuple[str, bool]]:
            if len(records) == 1:
                return [await one(conn, records[0])]
            async with conn.transaction():  # one commit (one WAL flush) for the whole batch
                return [await one(conn, r) for r in records]

        return await self._run(op)

    async def claim(
        self, queues: Sequence[str], limit: int, lease: float, now: float, finish: Sequence[Outcome] = ()
    ) -> list[JobRecord]:
        if finish:
            await self.finish(finish)
        single = len(queues) == 1
        target: Any = queues[0] if single else list(queues)
        rows = await self._fetch(self._sql_claim[single], now, now + lease, target, limit)
        rows.sort(key=lambda r: (r[0], r[1]))
        return [record_from_row(tuple(r)[2:]) for r in rows]

    async def _listen(self) -> None:
        if self._listener is not None and not self._listener.is_closed():
            return
        self._listener = None
        conn = self._listener = await asyncpg.connect(self._dsn, timeout=10)
        await conn.add_listener(self.channel, lambda *_: self._notified.set())
        self._notified.set()  # we may have missed notifications while not listening: look once

    async def wait(self, queues: Sequence[str], idle: float) -> None:
        try:
            await self._get_pool()
            await self._listen()
        except _UNAVAILABLE as exc:
            raise BackendUnavailableError(f"PostgreSQL {self.url.redacted()} unavailable: {exc}") from exc
        if self._notified.is_set():
            self._notified.clear()
            return
        try:
            await asyncio.wait_for(self._notified.wait(), idle)
            self._notified.clear()
        except TimeoutError:
            pass

    async def renew(self, leases: Sequence[tuple[str, int]], lease: float, now: float) -> set[str]:
        if not leases:
            return set()
        ids = [i for i, _ in leases]
        rows = await self._fetch(
            f"UPDATE {self.table} AS j SET lease_until = $3 "
            f"FROM unnest($1::text[], $2::int[]) AS u(id, token) "
            f"WHERE j.id = u.id AND j.token = u.token AND j.status = 'running' AND NOT j.cancel_requested "
            f"RETURNING j.id",
            ids,
            [t for _, t in leases],
            now + lease,
        )
        return set(ids) - {r[0] for r in rows}

    async def release(self, leases: Sequence[tuple[str, int]], now: float) -> None:
        if not leases:
            return
        await self._execute(
            f"WITH r AS (UPDATE {self.table} AS j SET "
            f"status = CASE WHEN j.cancel_requested THEN 'cancelled' ELSE 'queued' END, "
            f"completed_at = CASE WHEN j.cancel_requested THEN $3::float8 ELSE NULL END, "
            f"attempts = j.attempts - 1, lease_until = NULL, started_at = NULL "
            f"FROM unnest($1::text[], $2::int[]) AS u(id, token) "
            f"WHERE j.id = u.id AND j.token = u.token AND j.status = 'running' RETURNING j.id) "
            f"SELECT pg_notify('{self.channel}', '') FROM r LIMIT 1",
            [i for i, _ in leases],
            [t for _, t in leases],
            now,
        )

    async def finish(self, outcomes: Sequence[Outcome]) -> None:
        if not outcomes:
            return
        await self._execute(
            f"WITH f AS (UPDATE {self.table} AS j SET status = u.status, result = u.result, error = u.error, "
            f"traceback = u.traceback, completed_at = u.completed_at, lease_until = NULL, "
            f"run_at = CASE WHEN u.status = 'queued' THEN u.run_at ELSE j.run_at END, "
            f"progress = CASE WHEN u.status = 'succeeded' THEN 1.0 ELSE j.progress END "
            f"FROM unnest($1::text[], $2::int[], $3::text[], $4::bytea[], $5::text[], $6::text[], "
            f"$7::float8[], $8::float8[]) "
            f"AS u(id, token, status, result, error, traceback, run_at, completed_at) "
            f"WHERE j.id = u.id AND j.token = u.token AND j.status = 'running' RETURNING j.status) "
            f"SELECT pg_notify('{self.channel}', '') FROM f WHERE f.status = 'queued' LIMIT 1",
            [o.id for o in outcomes],
            [o.token for o in outcomes],
            [o.status.value for o in outcomes],
            [o.result for o in outcomes],
            [o.error for o in outcomes],
            [o.traceback for o in outcomes],
            [o.run_at for o in outcomes],
            [None if o.status is Status.QUEUED else o.completed_at for o in outcomes],
        )

    async def reap(self, queues: Sequence[str], now: float) -> list[JobRecord]:
        t = self.table
        rows = await self._fetch(
            f"WITH lapsed AS (SELECT seq FROM {t} WHERE status = 'running' AND lease_until < $1 "
            f"AND queue = ANY($2::text[]) FOR UPDATE SKIP LOCKED) "
            f"UPDATE {t} AS j SET stalls = j.stalls + 1, lease_until = NULL, "
            f"status = CASE WHEN j.cancel_requested THEN 'cancelled' "
            f"  WHEN j.stalls + 1 >= $3 THEN 'dead' ELSE 'queued' END, "
            f"completed_at = CASE WHEN j.cancel_requested OR j.stalls + 1 >= $3 THEN $1 ELSE NULL END, "
            f"error = CASE WHEN NOT j.cancel_requested AND j.stalls + 1 >= $3 "
            f"  THEN 'lease lapsed ' || (j.stalls + 1) || ' times: its worker died or hung each time' "
            f"  ELSE j.error END "
            f"FROM lapsed WHERE j.seq = lapsed.seq RETURNING {', '.join('j.' + c for c in COLUMNS)}",
            now,
            list(queues),
            MAX_STALLS,
        )
        records = [record_from_row(tuple(r)) for r in rows]
        if any(r.status == Status.QUEUED for r in records):
            await self._execute(f"SELECT pg_notify('{self.channel}', '')")
        return [r for r in records if r.status == Status.DEAD]

    async def get(self, job_id: str) -> JobRecord | None:
        rows = await self._fetch(f"SELECT {SELECT_LIST} FROM {self.table} WHERE id = $1", job_id)
        return record_from_row(tuple(rows[0])) if rows else None

    async def list(
        self, status: Status | None, queue: str | None, limit: int, cursor: str | None
    ) -> tuple[list[JobRecord], str | None]:
        clauses: list[str] = []
        params: list[Any] = []

        def bind(value: Any) -> str:
            params.append(value)
            return f"${len(params)}"

        if status is Status.SCHEDULED:
            clauses.append(f"status = 'queued' AND run_at > {bind(time.time())}")
        elif status is Status.QUEUED:
            clauses.append(f"status = 'queued' AND run_at <= {bind(time.time())}")
        elif status is not None:
            clauses.append(f"status = {bind(status.value)}")
        if queue is not None:
            clauses.append(f"queue = {bind(queue)}")
        if cursor is not None:
            clauses.append(f"seq < {bind(int(cursor))}")
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        sql = f"SELECT seq, {SELECT_LIST} FROM {self.table} {where} ORDER BY seq DESC LIMIT {bind(limit)}"
        rows = await self._fetch(sql, *params)
        nxt = str(rows[-1][0]) if len(rows) == limit else None
        return [record_from_row(tuple(r)[1:]) for r in rows], nxt

    async def cancel(self, job_id: str, now: float) -> JobRecord | None:
        t = self.table
        rows = await self._fetch(
            f"UPDATE {t} SET status = CASE WHEN status = 'queued' THEN 'cancelled' ELSE status END, "
            f"completed_at = CASE WHEN status = 'queued' THEN $2 ELSE completed_at END, "
            f"cancel_requested = cancel_requested OR status = 'running' "
            f"WHERE id = $1 RETURNING {SELECT_LIST}",
            job_id,
            now,
        )
        return record_from_row(tuple(rows[0])) if rows else None

    async def retry(self, job_id: str, now: float) -> bool:
        t = self.table
        sql = (
            f"WITH r AS (UPDATE {t} SET status = 'queued', attempts = 0, stalls = 0, run_at = $2, "
            f"completed_at = NULL, started_at = NULL, result = NULL, cancel_requested = false, progress = 0, "
            f"progress_message = NULL WHERE id = $1 AND status IN ('failed', 'dead', 'cancelled') "
            f"RETURNING id) "
            f"SELECT id, pg_notify('{self.channel}', '') FROM r"
        )

        async def op(conn: asyncpg.Connection) -> bool:
            try:
                return bool(await conn.fetch(sql, job_id, now))
            except asyncpg.UniqueViolationError:  # its key is held by a newer job: retry it without the key
                await conn.execute(f"UPDATE {t} SET key = NULL WHERE id = $1", job_id)
                return bool(await conn.fetch(sql, job_id, now))

        return await self._run(op)

    async def progress(self, job_id: str, value: float, message: str | None) -> None:
        await self._execute(
            f"UPDATE {self.table} SET progress = $2, progress_message = $3 WHERE id = $1",
            job_id,
            value,
            message,
        )

    async def cleanup(self, before: float) -> int:
        await self._execute(f"DELETE FROM {self.table}_once WHERE until < $1", before)
        result = await self._execute(
            f"DELETE FROM {self.table} WHERE completed_at < $1 AND status = ANY($2::text[])",
            before,
            list(TERMINAL),
        )
        return int(result.split()[-1])

    async def depth(self) -> dict[tuple[str, int], int]:
        rows = await self._fetch(
            f"SELECT queue, priority, count(*) FROM {self.table} WHERE status = 'queued' "
            f"GROUP BY queue, priority"
        )
        return {(r[0], int(r[1])): int(r[2]) for r in rows}

    async def claim_once(self, name: str, ttl: float) -> bool:
        now = time.time()
        result = await self._execute(
            f"INSERT INTO {self.table}_once (name, until) VALUES ($1, $2) ON CONFLICT (name) "
            f"DO UPDATE SET until = excluded.until WHERE {self.table}_once.until < $3",
            name,
            now + ttl,
            now,
        )
        return result.endswith(" 1")

    async def drop(self) -> None:
        """Drop this backend's tables (tests use a unique table name each)."""
        await self._execute(f"DROP TABLE IF EXISTS {self.table}, {self.table}_once")

    async def close(self) -> None:
        await self._pipeline.close()
        listener, self._listener = self._listener, None
        if listener is not None and not listener.is_closed():
            await listener.close()
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()
