"""Connection setup shared by the embedded SQLite stores (cache, job queue, monitoring)."""

from __future__ import annotations

import sqlite3
import time


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
