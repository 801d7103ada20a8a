"""SQLite connection set-up shared by the embedded SQLite stores (the cache, the job queue and the
monitor's store backends).

`enable_wal(conn, timeout=5.0)`: switch a connection's file to write-ahead logging, retrying while
another connection switches the same new file.
"""

from __future__ import annotations

import sqlite3
import time

__all__ = ["enable_wal"]


def enable_wal(conn: sqlite3.Connection, timeout: float = 5.0) -> None:
    """Switch the file to WAL, retrying while another connection is switching the same new file.

    SQLite answers that race with SQLITE_BUSY at once, without calling its busy handler (waiting
    could deadlock both), so `busy_timeout` does not cover it; two processes opening a fresh store
    together hit it about one time in ten.
    """
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() >= deadline:
                raise
        time.sleep(delay)  # a lock held by another connection: nothing to await, back off briefly
        delay = min(delay * 2, 0.05)
