"""Connection-pool status (size, checked out, overflow) and time spent waiting for a connection."""

from __future__ import annotations

from functools import wraps
from time import perf_counter
from typing import Any

from perfkit.metrics import Collector

_WRAPPED = "_perfkit_wait_wrapped"


def sync_engine(engine: Any) -> Any:
    """The sync Engine behind an AsyncEngine (or the engine itself)."""
    return getattr(engine, "sync_engine", engine)


def pool_status(engine: Any) -> dict[str, Any]:
    """A snapshot of the pool: what `perfkit.db` reports and the monitoring part exports.

    `overflow` is the connections checked out beyond `size` (0 up to `max_overflow`), not SQLAlchemy's
    `QueuePool.overflow()`, which counts from `-size` while the pool fills (-5 for an idle pool of 5)
    and stays up while an overflow connection waits checked in."""
    pool = sync_engine(engine).pool
    status: dict[str, Any] = {"class": type(pool).__name__}
    for name, key in (("size", "size"), ("checkedout", "checked_out"), ("checkedin", "checked_in")):
        method = getattr(pool, name, None)
        if callable(method):
            status[key] = method()
    if callable(getattr(pool, "overflow", None)) and isinstance(status.get("size"), int):
        status["overflow"] = max(0, int(status.get("checked_out", 0)) - status["size"])
    max_overflow = getattr(pool, "_max_overflow", None)
    if max_overflow is not None:
        status["max_overflow"] = max_overflow
    timeout = getattr(pool, "_timeout", None)
    if timeout is not None:
        status["timeout"] = timeout
    return status


def track_pool_wait(engine: Any, collector: Collector) -> None:
    """Time every pool checkout (the wait for a free connection) into `db_pool_wait_seconds`."""
    pool = sync_engine(engine).pool
    if getattr(pool, _WRAPPED, False):
        return
    histogram = collector.histogram("db_pool_wait_seconds", (), "Time to get a pooled connection")
    connect = pool.connect

    @wraps(connect)
    def timed_connect(*args: Any, **kwargs: Any) -> Any:
        start = perf_counter()
        try:
            return connect(*args, **kwargs)
        finally:
            histogram.observe((), perf_counter() - start)

    pool.connect = timed_connect
    setattr(pool, _WRAPPED, True)
