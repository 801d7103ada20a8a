"""Embedded SQLite stores opened at the same moment by several connections (processes starting together)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from perfkit.sqlite import enable_wal


def test_fresh_file_switched_to_wal_by_racing_connections(tmp_path: Path) -> None:
    """Four connections switching the same new file to WAL at once all succeed (SQLite answers that race
    with an immediate 'database is locked' that busy_timeout does not cover; it failed CI once)."""
    errors: list[str] = []
    for i in range(60):
        path = tmp_path / f"store{i}.db"
        barrier = threading.Barrier(4)

        def open_store(path: Path = path, barrier: threading.Barrier = barrier) -> None:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            try:
                conn.execute("PRAGMA busy_timeout = 5000")
                barrier.wait()
                enable_wal(conn)
                mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
                if mode != "wal":
                    errors.append(f"{path.name}: {mode}")
            except sqlite3.Error as exc:
                errors.append(f"{path.name}: {exc}")
            finally:
                conn.close()

        threads = [threading.Thread(target=open_store) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []


def test_other_sqlite_errors_are_not_retried(tmp_path: Path) -> None:
    """Only lock contention is retried: a file that is not a database fails at once, with its own error."""
    path = tmp_path / "not-a-db"
    path.write_bytes(b"this is not an sqlite file" * 100)
    conn = sqlite3.connect(path)
    try:
        with pytest.raises(sqlite3.DatabaseError, match="not a database"):
            enable_wal(conn, timeout=30)
    finally:
        conn.close()
