"""What a cached value depends on, expressed as cache tags, and which columns writers must report.

Three kinds of tag per table:

    dep:tickets                       any change to the table (table-wide dependents)
    dep:tickets.organization_id=7     a change to a row whose organization_id was or became 7
    dep:tickets!                      a change to rows that cannot be known (Core DML, unreadable bulk)

A column-scoped dependent carries both its column tag and the table's `!` tag, so "some rows of
tickets changed, we cannot say which" reaches it too. Writers report column tags only for the columns
someone depends on: the primary key, foreign keys, and every column named in a `depends_on` or a
`cache.query` condition in this process (processes running the same code register the same columns).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Table, inspect
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import BinaryExpression, BindParameter, ColumnElement

from perfkit.cache.depends import TagBuilder, column_tag, fill, table_tag, unknown_rows_tag
from perfkit.errors import InvalidArgumentError

__all__ = [
    "column_tag",
    "compile_dependencies",
    "compile_dependency",
    "dependency_columns",
    "note_column",
    "table_tag",
    "unknown_rows_tag",
]

_lock = threading.Lock()
_columns: dict[str, set[str]] = {}
_version = 0  # bumped by note_column; invalidates the per-table cache below
_cached: dict[Table, tuple[int, frozenset[str]]] = {}


def note_column(table: str, column: str) -> None:
    """Record that some cached value depends on `table.column`, so writers report its values."""
    global _version
    with _lock:
        known = _columns.setdefault(table, set())
        if column not in known:
            known.add(column)
            _version += 1


def dependency_columns(table: Table) -> set[str]:
    """The columns whose old and new values a write to `table` must report."""
    hit = _cached.get(table)
    if hit is not None and hit[0] == _version:  # every flushed row asks: answer from a cache
        return set(hit[1])
    with _lock:
        cols = {c.name for c in table.primary_key.columns}
        cols.update(fk.parent.name for fk in table.foreign_keys)
        cols.update(_columns.get(table.name, ()))
        _cached[table] = (_version, frozenset(cols))
    return cols


def _table_of(target: Any) -> Table | None:
    if isinstance(target, Table):
        return target
    try:
        mapper = inspect(target, raiseerr=False)
    except Exception:
        return None
    local = getattr(mapper, "local_table", None)
    return local if isinstance(local, Table) else None


def _column_of(expr: Any) -> tuple[str, str] | None:
    """(table name, column name) of a mapped attribute or a Table column, else None."""
    col = getattr(expr, "__clause_element__", lambda: expr)()
    table = getattr(col, "table", None)
    name = getattr(col, "name", None)
    if isinstance(col, ColumnElement) and isinstance(table, Table) and isinstance(name, str):
        return table.name, name
    return None


def compile_dependency(dep: Any) -> TagBuilder:
    """A function (call arguments) -> tags for one `depends_on` item; templates like "{org_id}" allowed."""
    table = _table_of(dep)
    if table is not None:
        tags = [table_tag(table.name)]
        return lambda values: tags
    if isinstance(dep, BinaryExpression) and isinstance(dep.right, BindParameter):
        column = _column_of(dep.left)
        if column is not None and dep.operator in (operators.eq, operators.in_op):
            table_name, col_name = column
            note_column(table_name, col_name)
            raw = dep.right.value
            many = dep.operator is operators.in_op
            unknown = unknown_rows_tag(table_name)

            def build(values: Mapping[str, Any]) -> list[str]:
                items: list[Any] = list(raw or ()) if many else [raw]
                out = [column_tag(table_name, col_name, fill(v, values)) for v in items]
                out.append(unknown)
                return out

            return build
    raise InvalidArgumentError(
        f"depends_on item {dep!r} is not a mapped class, a Table, or `Model.column == value` / `.in_([...])`"
    )


def compile_dependencies(deps: Iterable[Any]) -> TagBuilder:
    builders = [compile_dependency(d) for d in deps]
    return lambda values: [tag for b in builders for tag in b(values)]
