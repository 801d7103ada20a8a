"""Embedded backend: one SQLite file in WAL mode, shared by every process on the machine.

Statements run inline on the caller's thread under a lock rather than in a thread pool: an indexed
read or a WAL write takes microseconds, far less than a thread hop. The busy timeout bounds how long
a writer may wait for another process's lock.

Other processes' L1 copies are kept coherent through a change log (key, tag, pattern or prefix per
row). Readers call `changes_since()` at most every few tens of milliseconds; `PRAGMA data_version`
tells them for free whether anyone else wrote at all.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perfkit.backends import BackendURL
from perfkit.cache.pattern import compile_pattern
from perfkit.errors import BackendError, BackendUnavailableError, ConfigurationError, SerializationError
from perfkit.sqlite import enable_wal

if TYPE_CHECKING:
    from perfkit.cache.backends.memory import MemoryBackend
    from perfkit.cache.coherence import Coherence

_SCHEMA = """
CREATE TABLE IF NOT EXISTS perfkit_cache (
    key TEXT PRIMARY KEY, value BLOB NOT NULL, expires_at REAL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS perfkit_cache_expiry ON perfkit_cache(expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS perfkit_cache_tags (
    tag TEXT NOT NULL, key TEXT NOT NULL, expires_at REAL, PRIMARY KEY (tag, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS perfkit_cache_tags_key ON perfkit_cache_tags(key);
CREATE TABLE IF NOT EXISTS perfkit_cache_locks (
    key TEXT PRIMARY KEY, token TEXT NOT NULL, expires_at REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS perfkit_cache_tagv (
    tag TEXT PRIMARY KEY, version INTEGER NOT NULL, at REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS perfkit_cache_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, origin TEXT NOT NULL, op TEXT NOT NULL, arg TEXT NOT NULL,
    at REAL NOT NULL
);
"""
LOG_RETENTION = 60.0  # seconds of change log kept for other processes' L1 coherence
VERSION_RETENTION = 86400.0  # a tag version outlives any load that could have read it
_SWEEP_EVERY = 1000
_CHUNK = 500


def sqlite_path(url: BackendURL) -> str:
    """SQLAlchemy's convention: `sqlite:///rel.db` is relative, `sqlite:////abs.db` absolute."""
    path = url.path[1:] if url.path.startswith("/") else url.path
    if url.host:  # sqlite://host/... is a typo for sqlite:///...
        raise ConfigurationError(
            "url", f"{url.raw!r}: a SQLite URL has no host; write sqlite:///path/to/cache.db"
        )
    if not path:
        raise ConfigurationError("url", f"{url.raw!r} names no file; write sqlite:///path/to/cache.db")
    return path


class SQLiteBackend:
    kind = "sqlite"
    stores_objects = False
    shared = True

    def key_prefix(self, namespace: str) -> str:
        return namespace + ":"

    def coherence(self, prefix: str, l1: MemoryBackend, interval: float) -> Coherence:
        """An L1 in front reads this file's change log every `interval` seconds (`SQLiteWatcher`)."""
        from perfkit.cache.coherence import SQLiteWatcher

        return SQLiteWatcher(self, prefix, l1, interval)

    def __init__(self, url: BackendURL, *, timeout: float = 1.0, origin: str = "") -> None:
        self.path = sqlite_path(url)
        self.timeout = timeout
        self.origin = origin or os.urandom(8).hex()
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._writes = 0
        self._last_seq = 0
        self._data_version = -1

    # -- connection ---------------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False)
        enable_wal(conn, self.timeout)
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(_SCHEMA)
        row = conn.execute("SELECT coalesce(max(seq), 0) FROM perfkit_cache_log").fetchone()
        self._last_seq = row[0]
        self._data_version = conn.execute("PRAGMA data_version").fetchone()[0]
        return conn

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                if self._conn is None:
                    self._conn = self._connect()
                yield self._conn
            except sqlite3.OperationalError as exc:
                if self._conn is not None and self._conn.in_transaction:
                    self._conn.rollback()
                if "locked" in str(exc) or "busy" in str(exc) or "unable to open" in str(exc):
                    raise BackendUnavailableError(f"SQLite cache {self.path!r}: {exc}") from exc
                raise BackendError(f"SQLite cache {self.path!r}: {exc}") from exc
            except sqlite3.Error as exc:
                if self._conn is not None and self._conn.in_transaction:
                    self._conn.rollback()
                raise BackendError(f"SQLite cache {self.path!r}: {exc}") from exc

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._db() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.rollback()
                raise
            conn.commit()
        self._writes += 1
        if self._writes % _SWEEP_EVERY == 0:
            self.sweep()

    def _log(self, conn: sqlite3.Connection, op: str, args: Sequence[str]) -> None:
        now = time.time()
        conn.executemany(
            "INSERT INTO perfkit_cache_log (origin, op, arg, at) VALUES (?, ?, ?, ?)",
            [(self.origin, op, arg, now) for arg in args],
        )

    # -- coherence ---------------------------------------------------------------------------------

    def changes_since_last(self, force: bool = False) -> list[tuple[str, str]] | None:
        """Other processes' changes since the last call; None means "too far behind: drop all of L1".
        `force` reads the log even when no other connection wrote (for rows this process just wrote)."""
        with self._db() as conn:
            version = conn.execute("PRAGMA data_version").fetchone()[0]
            if version == self._data_version and not force:
                return []
            self._data_version = version
            rows = conn.execute(
                "SELECT seq, origin, op, arg FROM perfkit_cache_log WHERE seq > ? ORDER BY seq",
                (self._last_seq,),
            ).fetchall()
        if not rows:
            return []
        gap = self._last_seq and rows[0][0] > self._last_seq + 1
        self._last_seq = rows[-1][0]
        if gap:
            return None
        return [(op, arg) for _, origin, op, arg in rows if origin != self.origin]

    # -- reads -------------------------------------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        with self._db() as conn:
            row = conn.execute(
                "SELECT value FROM perfkit_cache WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)",
                (key, time.time()),
            ).fetchone()
        return row[0] if row else None

    async def get_many(self, keys: Sequence[str]) -> list[Any | None]:
        found: dict[str, bytes] = {}
        now = time.time()
        with self._db() as conn:
            for i in range(0, len(keys), _CHUNK):
                chunk = list(keys[i : i + _CHUNK])
                marks = ",".join("?" * len(chunk))
                for key, value in conn.execute(
                    f"SELECT key, value FROM perfkit_cache WHERE key IN ({marks})"  # noqa: S608 - placeholders only
                    " AND (expires_at IS NULL OR expires_at > ?)",
                    [*chunk, now],
                ):
                    found[key] = value
        return [found.get(k) for k in keys]

    async def exists(self, key: str) -> bool:
        return await self.get(key) is not None

    # -- writes ------------------------------------------------------------------------------------

    def _put(
        self,
        conn: sqlite3.Connection,
        items: Sequence[tuple[str, Any]],
        ttl: float | None,
        tags: Sequence[str],
    ) -> None:
        expires_at = time.time() + ttl if ttl is not None else None
        conn.executemany(
            "INSERT INTO perfkit_cache (key, value, expires_at) VALUES (?, ?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
            [(k, v, expires_at) for k, v in items],
        )
        # a re-set value leaves the tags it no longer has (an indexed lookup that finds nothing when it
        # had none), or invalidating one of them would remove it
        if tags:
            conn.executemany(
                f"DELETE FROM perfkit_cache_tags WHERE key = ? AND tag NOT IN ({','.join('?' * len(tags))})",  # noqa: S608
                [(k, *tags) for k, _ in items],
            )
        else:
            conn.executemany("DELETE FROM perfkit_cache_tags WHERE key = ?", [(k,) for k, _ in items])
        if tags:
            conn.executemany(
                "INSERT INTO perfkit_cache_tags (tag, key, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT(tag, key) DO UPDATE SET expires_at = excluded.expires_at",
                [(tag, k, expires_at) for k, _ in items for tag in tags],
            )
        self._log(conn, "k", [k for k, _ in items])

    def _versions(self, conn: sqlite3.Connection, tags: Sequence[str]) -> list[int]:
        found = dict(
            conn.execute(
                f"SELECT tag, version FROM perfkit_cache_tagv WHERE tag IN ({','.join('?' * len(tags))})",  # noqa: S608
                list(tags),
            ).fetchall()
        )
        return [found.get(tag, 0) for tag in tags]

    async def tag_versions(self, tags: Sequence[str]) -> list[int]:
        if not tags:
            return []
        with self._db() as conn:
            return self._versions(conn, tags)

    async def set(
        self,
        key: str,
        value: Any,
        ttl: float | None,
        tags: Sequence[str] = (),
        expect: Sequence[int] | None = None,
    ) -> bool:
        with self._write() as conn:
            if expect is not None and tags and self._versions(conn, tags) != list(expect):
                return False
            self._put(conn, [(key, value)], ttl, tags)
        return True

    async def set_many(
        self, items: Sequence[tuple[str, Any]], ttl: float | None, tags: Sequence[str] = ()
    ) -> None:
        with self._write() as conn:
            self._put(conn, items, ttl, tags)

    def _delete_keys(self, conn: sqlite3.Connection, keys: Sequence[str]) -> int:
        removed = 0
        for i in range(0, len(keys), _CHUNK):
            chunk = list(keys[i : i + _CHUNK])
            marks = ",".join("?" * len(chunk))
            removed += conn.execute(f"DELETE FROM perfkit_cache WHERE key IN ({marks})", chunk).rowcount  # noqa: S608
            conn.execute(f"DELETE FROM perfkit_cache_tags WHERE key IN ({marks})", chunk)  # noqa: S608
        return removed

    async def delete(self, keys: Sequence[str]) -> int:
        with self._write() as conn:
            removed = self._delete_keys(conn, keys)
            self._log(conn, "k", keys)
        return removed

    async def incr(self, key: str, delta: int, ttl: float | None) -> int:
        now = time.time()
        with self._write() as conn:
            row = conn.execute(
                "SELECT value FROM perfkit_cache WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)",
                (key, now),
            ).fetchone()
            if row is None:
                value = delta
                conn.execute(
                    "INSERT OR REPLACE INTO perfkit_cache (key, value, expires_at) VALUES (?, ?, ?)",
                    (key, str(value).encode(), now + ttl if ttl is not None else None),
                )
            else:
                try:
                    value = int(row[0]) + delta
                except ValueError:
                    raise SerializationError(
                        f"cannot incr key {key!r}: it does not hold an integer"
                    ) from None
                conn.execute("UPDATE perfkit_cache SET value = ? WHERE key = ?", (str(value).encode(), key))
            self._log(conn, "k", [key])
        return value

    async def invalidate_tags(self, tags: Sequence[str], removed_keys: list[str] | None = None) -> int:
        removed = 0
        now = time.time()
        with self._write() as conn:
            for tag in tags:
                # set-based, in SQL: 100k keys never pass through Python (benchmarks/cache.py)
                removed += conn.execute(
                    "DELETE FROM perfkit_cache WHERE key IN "
                    "(SELECT key FROM perfkit_cache_tags WHERE tag = ?)",
                    (tag,),
                ).rowcount
                # L1 copies filled from reads carry no tags, so other processes are told the keys
                conn.execute(
                    "INSERT INTO perfkit_cache_log (origin, op, arg, at) "
                    "SELECT '', 'k', key, ? FROM perfkit_cache_tags WHERE tag = ?",
                    (now, tag),  # origin '': this process's own L1 applies these rows too
                )
                conn.execute("DELETE FROM perfkit_cache_tags WHERE tag = ?", (tag,))
                conn.execute(
                    "INSERT INTO perfkit_cache_tagv (tag, version, at) VALUES (?, 1, ?) "
                    "ON CONFLICT(tag) DO UPDATE SET version = version + 1, at = excluded.at",
                    (tag, now),
                )
        return removed

    async def delete_match(self, pattern: str) -> int:
        """Remove the keys matching `pattern` (`perfkit.cache.pattern`): GLOB narrows in SQL, the
        pattern itself decides, so SQLite removes what the other backends remove."""
        compiled = compile_pattern(pattern)
        head, matches = compiled.head, compiled.matches
        with self._write() as conn:
            if head:
                rows = conn.execute(
                    "SELECT key FROM perfkit_cache WHERE key >= ? AND key < ? AND key GLOB ?",
                    (head, head + "\U0010ffff", compiled.sqlite_glob),
                )
            else:
                rows = conn.execute("SELECT key FROM perfkit_cache WHERE key GLOB ?", (compiled.sqlite_glob,))
            doomed = [(key,) for (key,) in rows.fetchall() if matches(key)]
            conn.executemany("DELETE FROM perfkit_cache WHERE key = ?", doomed)
            self._log(conn, "p", [pattern])
        return len(doomed)

    async def clear(self, prefix: str) -> int:
        with self._write() as conn:
            removed = conn.execute(
                "DELETE FROM perfkit_cache WHERE key >= ? AND key < ?", (prefix, prefix + "\U0010ffff")
            ).rowcount
            for table in ("perfkit_cache_tags", "perfkit_cache_tagv"):
                conn.execute(
                    f"DELETE FROM {table} WHERE tag >= ? AND tag < ?",  # noqa: S608 - two fixed names
                    (prefix, prefix + "\U0010ffff"),
                )
            self._log(conn, "c", [prefix])
        return removed

    # -- locks -------------------------------------------------------------------------------------

    async def acquire_lock(self, key: str, token: str, ttl: float) -> bool:
        now = time.time()
        with self._write() as conn:
            cur = conn.execute(
                "INSERT INTO perfkit_cache_locks (key, token, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET token = excluded.token, expires_at = excluded.expires_at "
                "WHERE perfkit_cache_locks.expires_at <= ? OR perfkit_cache_locks.token = excluded.token",
                (key, token, now + ttl, now),
            )
            return cur.rowcount == 1

    async def release_lock(self, key: str, token: str) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM perfkit_cache_locks WHERE key = ? AND token = ?", (key, token))

    # -- upkeep ------------------------------------------------------------------------------------

    def sweep(self) -> None:
        """Delete expired values, tag rows, locks and old log rows: bookkeeping stays bounded."""
        now = time.time()
        with self._db() as conn:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "DELETE FROM perfkit_cache WHERE key IN "
                "(SELECT key FROM perfkit_cache WHERE expires_at <= ? LIMIT 10000)",
                (now,),
            )
            conn.execute("DELETE FROM perfkit_cache_tags WHERE expires_at <= ?", (now,))
            # tag rows of keys deleted by hand (delete, delete_match) before they expired, in bounded steps
            conn.execute(
                "DELETE FROM perfkit_cache_tags WHERE (tag, key) IN "
                "(SELECT t.tag, t.key FROM perfkit_cache_tags t LEFT JOIN perfkit_cache c ON c.key = t.key "
                "WHERE c.key IS NULL LIMIT 10000)"
            )
            conn.execute("DELETE FROM perfkit_cache_locks WHERE expires_at <= ?", (now,))
            conn.execute("DELETE FROM perfkit_cache_log WHERE at < ?", (now - LOG_RETENTION,))
            conn.execute("DELETE FROM perfkit_cache_tagv WHERE at < ?", (now - VERSION_RETENTION,))
            conn.commit()

    async def ping(self) -> None:
        with self._db() as conn:
            conn.execute("SELECT 1").fetchone()

    async def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
