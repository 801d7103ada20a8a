"""Engine hooks: per-query timing into the collector and the current request, slow queries, repeats.

`before_cursor_execute` stamps the start; `after_cursor_execute` adds the duration to the request's
`RequestStats` (a contextvar, so concurrent requests never mix), observes the latency histogram, logs
slow statements with redacted parameters (and their EXPLAIN, once per shape), and reports a statement
run with identical parameters `repeat_threshold` times in one request.
"""

from __future__ import annotations

import logging
from time import perf_counter
from typing import Any

from perfkit.db.config import DbConfig
from perfkit.db.explain import Plan, explainable, redact_plan, run_explain, suggest_indexes
from perfkit.db.statements import clip, params_key, redact, shape, shape_id
from perfkit.metrics import Collector, current_request

log = logging.getLogger("perfkit.db")
_START = "_perfkit_start"


_OPS = {op: (op,) for op in ("SELECT", "INSERT", "UPDATE", "DELETE")}


def dbapi_connection(conn: Any, cursor: Any) -> Any:
    """The DBAPI connection that ran `cursor`: the cursor's own (PEP 249 optional), else the pooled
    connection behind the SQLAlchemy `conn` (asyncpg's adapted cursor has no `.connection`)."""
    connection = getattr(cursor, "connection", None)
    if connection is None:
        connection = conn.connection.dbapi_connection
    return connection


def _operation(statement: str) -> tuple[str]:
    head = statement.lstrip()[:6].upper()
    return _OPS.get(head, ("OTHER",))


class QueryHooks:
    """The event handlers for one engine; `attach()` and `detach()` add and remove them."""

    def __init__(self, engine: Any, config: DbConfig, collector: Collector) -> None:
        self.engine = engine
        self.config = config
        self.collector = collector
        self.dialect = engine.dialect.name
        self.latency = collector.histogram(
            "db_query_duration_seconds", ("operation",), "SQL statement duration"
        )
        self.slow_total = collector.counter("db_slow_queries_total", (), "Statements over the slow threshold")
        # per statement shape and route: what the report's grouped slow queries count, total and rank
        self.slow_shapes = collector.histogram(
            "db_slow_query_duration_seconds", ("shape", "route"), "Slow statements by shape id and route"
        )
        self.slow = float(config.slow_query or 0.0)
        self._explained: dict[str, list[str] | None] = {}

    def attach(self) -> None:
        from sqlalchemy import event

        event.listen(self.engine, "before_cursor_execute", self.before)
        event.listen(self.engine, "after_cursor_execute", self.after)

    def detach(self) -> None:
        from sqlalchemy import event

        event.remove(self.engine, "before_cursor_execute", self.before)
        event.remove(self.engine, "after_cursor_execute", self.after)

    def before(self, conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        context._perfkit_start = perf_counter()  # one attribute on SQLAlchemy's per-execution context

    def after(self, conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        parameters = params
        start = getattr(context, _START, None)
        if start is None:
            return
        elapsed = perf_counter() - start
        head = statement[:6]
        op = _OPS.get(head) or _operation(statement)
        self.latency.observe(op, elapsed)
        stats = current_request()
        if stats is not None:
            stats.db_count += 1
            stats.db_time += elapsed
            if not many:
                key = params_key(statement, parameters)
                if key is not None:
                    seen = stats.statements.get(key, 0) + 1
                    stats.statements[key] = seen
                    if seen == self.config.repeat_threshold:
                        self._repeated(statement, parameters, stats.route, seen)
        if self.slow and elapsed >= self.slow:
            route = stats.route if stats else None
            self._slow(dbapi_connection(conn, cursor), statement, parameters, many, elapsed, route)

    def _repeated(self, statement: str, parameters: Any, route: str, count: int) -> None:
        self.collector.record("repeated_query", {
            "statement": clip(statement),
            "shape_id": shape_id(shape(statement)),
            "parameters": redact(parameters, bool(self.config.log_params)),
            "count": count,
            "route": route,
            "message": f"the same query ran {count}+ times in one request: load it once and reuse it",
        })  # fmt: skip

    def _slow(
        self, connection: Any, statement: str, parameters: Any, many: bool, elapsed: float, route: str | None
    ) -> None:
        self.slow_total.inc()
        key = shape(statement)
        sid = shape_id(key)
        self.slow_shapes.observe((sid, route or "-"), elapsed)
        finding: dict[str, Any] = {
            "statement": clip(statement),
            "parameters": redact(parameters, bool(self.config.log_params)),
            "duration_ms": round(elapsed * 1000, 2),
            "route": route,
            "shape": clip(key),
            "shape_id": sid,
        }
        if self.config.explain and not many and explainable(statement) and key not in self._explained:
            if len(self._explained) >= self.config.max_shapes:
                self._explained.pop(next(iter(self._explained)))
            plan = self._explain(connection, statement, parameters)
            lines = None if plan is None else plan.lines
            if lines is not None and not self.config.log_params:
                lines = redact_plan(lines)
            self._explained[key] = lines
            if plan is not None and lines is not None:
                finding["explain"] = lines
                # once per shape, on its own: the grouped report finds it after the ring dropped this finding
                self.collector.record("query_plan", {"shape_id": sid, "shape": clip(key), "explain": lines})
                for suggestion in suggest_indexes(self.dialect, statement, plan):
                    self.collector.record("index_suggestion", {**suggestion, "statement": clip(statement)})
        self.collector.record("slow_query", finding)
        log.warning("slow query %.1f ms route=%s: %s", elapsed * 1000, route, finding["statement"],
                    extra={"perfkit": finding})  # fmt: skip

    def _explain(self, connection: Any, statement: str, parameters: Any) -> Plan | None:
        try:
            return run_explain(
                connection, self.dialect, statement, parameters, bool(self.config.explain_analyze)
            )
        except Exception as exc:  # EXPLAIN is best effort: never break the application's query
            log.info("EXPLAIN failed for %s: %r", clip(statement)[:200], exc)
            return None
