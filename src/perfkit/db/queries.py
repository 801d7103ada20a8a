"""SQLAlchemy engine hooks: `before_cursor_execute` stamps the start, `after_cursor_execute` hands the
finished statement to `StatementObserver` (observe.py): per-request counts and time (a contextvar, so
concurrent requests never mix), the latency histogram, repeated statements, slow ones with EXPLAIN once
per shape.
"""

from __future__ import annotations

from time import perf_counter
from typing import Any

from perfkit.db.observe import StatementObserver

_START = "_perfkit_start"


def dbapi_connection(conn: Any, cursor: Any) -> Any:
    """The DBAPI connection that ran `cursor`: the cursor's own (PEP 249 optional), else the pooled
    connection behind the SQLAlchemy `conn` (asyncpg's adapted cursor has no `.connection`)."""
    connection = getattr(cursor, "connection", None)
    if connection is None:
        connection = conn.connection.dbapi_connection
    return connection


class QueryHooks(StatementObserver):
    """The event handlers for one engine; `attach(engine)` and `detach(engine)` add and remove them.
    They hold no reference to the engine (the engine holds them), so they never keep it alive."""

    def attach(self, engine: Any) -> None:
        from sqlalchemy import event

        event.listen(engine, "before_cursor_execute", self.before)
        event.listen(engine, "after_cursor_execute", self.after)

    def detach(self, engine: Any) -> None:
        from sqlalchemy import event

        event.remove(engine, "before_cursor_execute", self.before)
        event.remove(engine, "after_cursor_execute", self.after)

    def before(self, conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        context._perfkit_start = perf_counter()  # one attribute on SQLAlchemy's per-execution context

    def after(self, conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        start = getattr(context, _START, None)
        if start is None:
            return
        elapsed = perf_counter() - start
        if self.observe(statement, params, many, elapsed):
            self.slow_query(dbapi_connection(conn, cursor), statement, params, many, elapsed)
