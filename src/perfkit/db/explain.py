"""EXPLAIN capture for slow statements (once per shape) and index suggestions read from the plan.

PostgreSQL: `EXPLAIN` (or `EXPLAIN (ANALYZE, BUFFERS)` when enabled) and a `Seq Scan on t` node with a
`Filter:` suggests an index on the filtered columns. SQLite: `EXPLAIN QUERY PLAN`, where `SCAN t`
(no index) plus the columns the WHERE clause compares on t suggests the same. Only SELECT statements are
explained; EXPLAIN runs on a fresh cursor of the same connection and any error is reported, not raised.
"""

from __future__ import annotations

import re
from typing import Any

_PG_SEQ = re.compile(r"Seq Scan on (\w+)(?: (\w+))?")
_PG_FILTER = re.compile(r"Filter: (.*)")
_PG_COLUMN = re.compile(r"\(*\"?(?:(\w+)\.)?(\w+)\"?\)?(?:::[\w ]+)?\s*(?:=|<>|!=|<=|>=|<|>|~~\*?|!~~)\s")
_SQLITE_SCAN = re.compile(r"^SCAN (?:TABLE )?(\w+)(?: AS (\w+))?(?! USING (?:COVERING )?INDEX)")
_WHERE = re.compile(r"\bWHERE\b(.*?)(?:\bGROUP BY\b|\bORDER BY\b|\bLIMIT\b|\bOFFSET\b|$)", re.I | re.S)
_SQL_COLUMN = re.compile(
    r"(?:\"?(\w+)\"?\.)?\"?(\w+)\"?\s*(?:=|<>|!=|<=|>=|<|>|\bIN\b|\bLIKE\b|\bIS\b)", re.I
)
_KEYWORDS = {"and", "or", "not", "null", "true", "false", "exists", "select", "where", "in", "is"}


def explainable(statement: str) -> bool:
    head = statement.lstrip().lower()
    return head.startswith("select") or head.startswith("with")


def run_explain(cursor: Any, dialect: str, statement: str, parameters: Any, analyze: bool) -> list[str]:
    """The plan as text lines, run on a new cursor of the DBAPI connection behind `cursor`."""
    if dialect == "sqlite":
        sql = "EXPLAIN QUERY PLAN " + statement
    elif dialect == "postgresql":
        sql = ("EXPLAIN (ANALYZE, BUFFERS) " if analyze else "EXPLAIN ") + statement
    else:
        sql = ("EXPLAIN ANALYZE " if analyze else "EXPLAIN ") + statement
    explain_cursor = cursor.connection.cursor()
    try:
        explain_cursor.execute(sql, parameters)
        rows = explain_cursor.fetchall()
    finally:
        explain_cursor.close()
    if dialect == "sqlite":
        return [str(row[-1]) for row in rows]
    return [" | ".join(str(c) for c in row) for row in rows]


_PLAN_LITERAL = re.compile(r"'(?:[^']|'')*'")


def redact_plan(plan: list[str]) -> list[str]:
    """PostgreSQL plans quote the parameter values in Filter lines; replace them with '?'."""
    return [_PLAN_LITERAL.sub("'?'", line) for line in plan]


def suggest_indexes(dialect: str, statement: str, plan: list[str]) -> list[dict[str, Any]]:
    """Index suggestions: tables read by a full scan while filtered on columns."""
    out: list[dict[str, Any]] = []
    if dialect == "postgresql":
        for i, line in enumerate(plan):
            seq = _PG_SEQ.search(line)
            if not seq:
                continue
            table, alias = seq.group(1), seq.group(2)
            filters = [m.group(1) for nxt in plan[i + 1 : i + 4] if (m := _PG_FILTER.search(nxt))]
            columns = _columns(_PG_COLUMN, " ".join(filters), {table, alias})
            if columns:
                out.append(_suggestion(table, columns, line.strip()))
    elif dialect == "sqlite":
        where = _WHERE.search(statement)
        for line in plan:
            scan = _SQLITE_SCAN.match(line.strip())
            if not scan or "USING" in line.upper() or where is None:
                continue
            table, alias = scan.group(1), scan.group(2)
            columns = _columns(_SQL_COLUMN, where.group(1), {table, alias})
            if columns:
                out.append(_suggestion(table, columns, line.strip()))
    return out


def _columns(pattern: re.Pattern[str], text: str, tables: set[str | None]) -> list[str]:
    columns: list[str] = []
    for match in pattern.finditer(text):
        qualifier, column = match.group(1), match.group(2)
        if qualifier is not None and qualifier not in tables:
            continue
        if column.lower() in _KEYWORDS or column.isdigit() or column in columns:
            continue
        columns.append(column)
    return columns[:3]


def _suggestion(table: str, columns: list[str], evidence: str) -> dict[str, Any]:
    name = f"ix_{table}_{'_'.join(columns)}"
    return {
        "table": table,
        "columns": columns,
        "evidence": evidence,
        "sql": f"CREATE INDEX {name} ON {table} ({', '.join(columns)})",
        "message": f"sequential scan on {table} filtered by {', '.join(columns)}: add an index",
    }
