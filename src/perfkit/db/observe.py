"""What perfkit does with one finished SQL statement, whatever ran it (SQLAlchemy's engine events or
Django's `execute_wrapper`): count and time it into the current request's `RequestStats` and the
`db_query_duration_seconds{operation}` histogram, report a statement run with identical parameters
`repeat_threshold` times in one request, and for a slow one count it (`db_slow_queries_total`,
`db_slow_query_duration_seconds{shape,route}`), log it with redacted parameters and EXPLAIN it once per
statement shape (at most `DbConfig.max_shapes` shapes remembered), with index suggestions from the plan.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from perfkit.db.config import DbConfig
from perfkit.db.explain import Plan, explainable, redact_plan, run_explain, suggest_indexes
from perfkit.db.statements import clip, params_key, redact, shape, shape_id
from perfkit.metrics import Collector, current_request

log = logging.getLogger("perfkit.db")

_OPS = {op: (op,) for op in ("SELECT", "INSERT", "UPDATE", "DELETE")}
SAVEPOINT = "perfkit_explain"  # the savepoint EXPLAIN runs in on PostgreSQL
MAX_STATEMENTS = 10_000  # distinct (statement, parameters) remembered per request for repeat detection
# told of every statement as it finishes: `listener(dialect, statement, many, elapsed)` (perfkit.otel's spans)
StatementListener = Callable[[str, str, bool, float], None]


def operation(statement: str) -> tuple[str]:
    """The `operation` label of a statement: SELECT, INSERT, UPDATE, DELETE or OTHER."""
    head = statement[:6]
    found = _OPS.get(head)
    if found is None:
        found = _OPS.get(statement.lstrip()[:6].upper(), ("OTHER",))
    return found


class StatementObserver:
    """The per-statement accounting for one database (`dialect`: "sqlite", "postgresql", ...)."""

    def __init__(self, dialect: str, config: DbConfig, collector: Collector) -> None:
        self.dialect = dialect
        self.config = config
        self.collector = collector
        self.latency = collector.histogram(
            "db_query_duration_seconds", ("operation",), "SQL statement duration"
        )
        self.slow_total = collector.counter("db_slow_queries_total", (), "Statements over the slow threshold")
        # per statement shape and route: what the report's grouped slow queries count, total and rank
        self.slow_shapes = collector.histogram(
            "db_slow_query_duration_seconds", ("shape", "route"), "Slow statements by shape id and route"
        )
        self.slow = float(config.slow_query or 0.0)
        self.repeat_threshold = config.repeat_threshold
        self._explained: dict[str, list[str] | None] = {}
        self._lock = threading.Lock()  # the slow path only: Django serves requests from several threads
        self.listeners: list[StatementListener] = []

    def add_listener(self, listener: StatementListener) -> None:
        """Also call `listener(dialect, statement, many, elapsed)` for every statement, in its context."""
        if listener not in self.listeners:
            self.listeners.append(listener)

    def remove_listener(self, listener: StatementListener) -> None:
        """Stop calling `listener` (a no-op if it is not listening)."""
        if listener in self.listeners:
            self.listeners.remove(listener)

    @property
    def shapes_explained(self) -> int:
        """How many statement shapes are remembered as explained (never more than `max_shapes`)."""
        return len(self._explained)

    def observe(self, statement: str, parameters: Any, many: bool, elapsed: float) -> bool:
        """Account one statement that took `elapsed` seconds; True when it was slow (the caller then
        calls `slow_query` with the connection that can EXPLAIN it)."""
        self.latency.observe(operation(statement), elapsed)
        for listener in self.listeners:
            listener(self.dialect, statement, many, elapsed)
        stats = current_request()
        if stats is not None:
            stats.db_count += 1
            stats.db_time += elapsed
            if not many:
                key = params_key(statement, parameters)
                statements = stats.statements
                if key is not None and (key in statements or len(statements) < MAX_STATEMENTS):
                    seen = statements.get(key, 0) + 1
                    statements[key] = seen
                    if seen == self.repeat_threshold:
                        self._repeated(statement, parameters, stats.route, seen)
        return bool(self.slow) and elapsed >= self.slow

    def _repeated(self, statement: str, parameters: Any, route: str, count: int) -> None:
        self.collector.record("repeated_query", {
            "statement": clip(statement),
            "shape_id": shape_id(shape(statement)),
            "parameters": redact(parameters, bool(self.config.log_params)),
            "count": count,
            "route": route,
            "message": f"the same query ran {count}+ times in one request: load it once and reuse it",
        })  # fmt: skip

    def slow_query(
        self, connection: Any, statement: str, parameters: Any, many: bool, elapsed: float
    ) -> None:
        """Count, record and log a slow statement; EXPLAIN it on `connection` if its shape is new."""
        stats = current_request()
        route = stats.route if stats is not None else None
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
        if self.config.explain and not many and explainable(statement) and self._first(key):
            plan = self.explain(connection, statement, parameters)
            lines = None if plan is None else plan.lines
            if lines is not None and not self.config.log_params:
                lines = redact_plan(lines)
            with self._lock:
                self._explained[key] = lines
            if plan is not None and lines is not None:
                finding["explain"] = lines
                # once per shape, on its own: the grouped report finds it after the ring dropped this finding
                self.collector.record("query_plan", {"shape_id": sid, "shape": clip(key), "explain": lines})
                for suggestion in suggest_indexes(self.dialect, statement, plan):
                    found = self.index_suggestion({**suggestion, "statement": clip(statement)})
                    self.collector.record("index_suggestion", found)
        self.collector.record("slow_query", finding)
        log.warning("slow query %.1f ms route=%s: %s", elapsed * 1000, route, finding["statement"],
                    extra={"perfkit": finding})  # fmt: skip

    def _first(self, key: str) -> bool:
        """True once per shape (the caller explains it); the oldest shape is forgotten past the cap."""
        with self._lock:
            if key in self._explained:
                return False
            while len(self._explained) >= self.config.max_shapes:
                self._explained.pop(next(iter(self._explained)))
            self._explained[key] = None
            return True

    def index_suggestion(self, suggestion: dict[str, Any]) -> dict[str, Any]:
        """The `index_suggestion` finding as recorded; an ORM's hooks add how to declare the index."""
        return suggestion

    def explain(self, connection: Any, statement: str, parameters: Any) -> Plan | None:
        """The plan of `statement`, run on a new cursor of `connection` (its `.cursor()`); None on error.

        On PostgreSQL inside a transaction it runs in a savepoint that is always rolled back: a failed
        EXPLAIN never aborts the application's transaction, and what EXPLAIN ANALYZE did (a `nextval`,
        a function with side effects) is undone. Outside a transaction (autocommit) the SAVEPOINT is
        refused, harmlessly, and EXPLAIN runs on its own."""
        guarded = self.dialect == "postgresql" and _run(connection, f"SAVEPOINT {SAVEPOINT}")
        try:
            return run_explain(
                connection, self.dialect, statement, parameters, bool(self.config.explain_analyze)
            )
        except Exception as exc:  # EXPLAIN is best effort: never break the application's query
            log.info("EXPLAIN failed for %s: %r", clip(statement)[:200], exc)
            return None
        finally:
            if guarded:
                _run(connection, f"ROLLBACK TO SAVEPOINT {SAVEPOINT}")
                _run(connection, f"RELEASE SAVEPOINT {SAVEPOINT}")


def _run(connection: Any, sql: str) -> bool:
    """Run one statement on a new cursor of `connection`; False if it was refused."""
    cursor = connection.cursor()
    try:
        cursor.execute(sql)
    except Exception:
        return False
    finally:
        cursor.close()
    return True
