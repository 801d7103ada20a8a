"""EXPLAIN capture for slow statements (once per shape) and index suggestions read from the plan.

PostgreSQL: `EXPLAIN (FORMAT JSON)` (with `ANALYZE, BUFFERS` when enabled), read as a tree
(`pg_plan.py`): a `Seq Scan` node with a `Filter` suggests an index on the filtered columns, and a
`Limit` over a `Sort` over a `Seq Scan` (an `ORDER BY ... LIMIT` that read and sorted the whole table)
suggests one on the filter's equality columns then the sort key. SQLite: `EXPLAIN QUERY PLAN`, where
`SCAN t` (no index) plus the columns the WHERE clause compares on t suggests the same, and `SCAN t` with
`USE TEMP B-TREE FOR ORDER BY` in a statement with `LIMIT` suggests an index on the ORDER BY columns.
Only SELECT statements are explained; EXPLAIN runs on a fresh cursor of the same connection and any error
is reported, not raised.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from perfkit.db import pg_plan
from perfkit.db.statements import equality_columns, sort_columns

_PG_COLUMN = re.compile(r"\(*\"?(?:(\w+)\.)?(\w+)\"?\)?(?:::[\w ]+)?\s*(?:=|<>|!=|<=|>=|<|>|~~\*?|!~~)\s")
_SQLITE_SCAN = re.compile(r"^SCAN (?:TABLE )?(\w+)(?: AS (\w+))?(?! USING (?:COVERING )?INDEX)")
_WHERE = re.compile(r"\bWHERE\b(.*?)(?:\bGROUP BY\b|\bORDER BY\b|\bLIMIT\b|\bOFFSET\b|$)", re.I | re.S)
_SQL_COLUMN = re.compile(
    r"(?:\"?(\w+)\"?\.)?\"?(\w+)\"?\s*(?:=|<>|!=|<=|>=|<|>|\bIN\b|\bLIKE\b|\bIS\b)", re.I
)
_ORDER_BY = re.compile(r"\bORDER BY\b(.*?)(?:\bLIMIT\b)", re.I | re.S)
_SQLITE_TEMP_SORT = "USE TEMP B-TREE FOR ORDER BY"
_KEYWORDS = {"and", "or", "not", "null", "true", "false", "exists", "select", "where", "in", "is"}


def explainable(statement: str) -> bool:
    head = statement.lstrip().lower()
    return head.startswith("select") or head.startswith("with")


@dataclass(frozen=True)
class Plan:
    """An EXPLAIN result: text lines (what is shown and logged) and, on PostgreSQL, the JSON tree."""

    lines: list[str]
    tree: dict[str, Any] | None = None


def run_explain(connection: Any, dialect: str, statement: str, parameters: Any, analyze: bool) -> Plan:
    """The plan, run on a new cursor of the DBAPI `connection` that ran the statement."""
    if dialect == "sqlite":
        sql = "EXPLAIN QUERY PLAN " + statement
    elif dialect == "postgresql":
        sql = (
            "EXPLAIN (FORMAT JSON, ANALYZE, BUFFERS) " if analyze else "EXPLAIN (FORMAT JSON) "
        ) + statement
    else:
        sql = ("EXPLAIN ANALYZE " if analyze else "EXPLAIN ") + statement
    explain_cursor = connection.cursor()
    try:
        explain_cursor.execute(sql, parameters)
        rows = explain_cursor.fetchall()
    finally:
        explain_cursor.close()
    if dialect == "sqlite":
        return Plan([str(row[-1]) for row in rows])
    if dialect == "postgresql":
        tree = pg_plan.root(list(rows))
        if tree is not None:
            return Plan(pg_plan.render(tree), tree)
    return Plan([" | ".join(str(c) for c in row) for row in rows])


_PLAN_LITERAL = re.compile(r"'(?:[^']|'')*'")


def redact_plan(plan: list[str]) -> list[str]:
    """PostgreSQL plans quote the parameter values in Filter lines; replace them with '?'."""
    return [_PLAN_LITERAL.sub("'?'", line) for line in plan]


def suggest_indexes(dialect: str, statement: str, plan: Plan) -> list[dict[str, Any]]:
    """Index suggestions: tables read by a full scan while filtered on columns, or read in full and
    sorted to return the first rows of an `ORDER BY ... LIMIT`."""
    if dialect == "postgresql" and plan.tree is not None:
        return _postgres(plan.tree)
    if dialect == "sqlite":
        return _sqlite(statement, plan.lines)
    return []


def _postgres(tree: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    covered: set[int] = set()
    for sort, scan in pg_plan.sorted_scans(tree):
        tables = {scan.get("Relation Name"), scan.get("Alias")}
        order = sort_columns(list(sort.get("Sort Key", ())), tables)
        if order is None:
            continue
        condition = str(scan.get("Filter", ""))
        equal = equality_columns(condition, tables)
        out.append(_sorted(scan["Relation Name"], equal, order, pg_plan.head(scan)))
        if set(_columns(_PG_COLUMN, condition, tables)) <= set(equal):
            covered.add(id(scan))  # the filter's columns lead the new index: no second suggestion
    for scan in pg_plan.filtered_scans(tree):
        if id(scan) in covered:
            continue
        tables = {scan.get("Relation Name"), scan.get("Alias")}
        columns = _columns(_PG_COLUMN, str(scan["Filter"]), tables)
        if columns:
            out.append(_suggestion(scan["Relation Name"], columns, pg_plan.head(scan)))
    return out


def _sqlite(statement: str, plan: list[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    where = _WHERE.search(statement)
    scans = [(line.strip(), m) for line in plan if (m := _SQLITE_SCAN.match(line.strip()))]
    scans = [(line, m) for line, m in scans if "USING" not in line.upper()]
    sorts = any(_SQLITE_TEMP_SORT in line.upper() for line in plan)
    ordered = _ORDER_BY.search(statement) if sorts and len(scans) == 1 else None
    if ordered is not None:
        line, scan = scans[0]
        tables = {scan.group(1), scan.group(2)}
        order = sort_columns(_split_terms(ordered.group(1)), tables)
        if order is not None:
            condition = where.group(1) if where is not None else ""
            equal = equality_columns(condition, tables)
            out.append(_sorted(scan.group(1), equal, order, f"{line}; {_SQLITE_TEMP_SORT}"))
            if set(_columns(_SQL_COLUMN, condition, tables)) <= set(equal):
                return out
    if where is None:
        return out
    for line, scan in scans:
        table, alias = scan.group(1), scan.group(2)
        columns = _columns(_SQL_COLUMN, where.group(1), {table, alias})
        if columns:
            out.append(_suggestion(table, columns, line))
    return out


def _split_terms(clause: str) -> list[str]:
    """ORDER BY terms split at top-level commas (a function call's commas stay inside its term)."""
    terms, depth, current = [], 0, ""
    for char in clause:
        depth += (char == "(") - (char == ")")
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    return [t.strip() for t in [*terms, current] if t.strip()]


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
        "reason": "filter",
        "evidence": evidence,
        "sql": f"CREATE INDEX {name} ON {table} ({', '.join(columns)})",
        "message": f"sequential scan on {table} filtered by {', '.join(columns)}: add an index",
    }


def _sorted(table: str, equal: list[str], order: list[str], evidence: str) -> dict[str, Any]:
    """An index whose leading columns are the filter's equality columns and then the sort key, so the
    first rows of `ORDER BY ... LIMIT n` are read in order instead of sorting the whole table."""
    names = [term.split()[0] for term in order]
    terms = [c for c in equal if c not in names] + order
    columns = [term.split()[0] for term in terms]
    return {
        "table": table,
        "columns": columns,
        "reason": "order_by",
        "order_by": order,
        "evidence": evidence,
        "sql": f"CREATE INDEX ix_{table}_{'_'.join(columns)} ON {table} ({', '.join(terms)})",
        "message": f"full scan and sort of {table} for ORDER BY {', '.join(order)} LIMIT: add an index",
    }
