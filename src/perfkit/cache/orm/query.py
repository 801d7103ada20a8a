"""`cache.query(session, select(...))`: cache a SELECT's rows with dependencies inferred from it.

The dependencies come from the statement itself: every table it reads, narrowed to column tags where
its WHERE clause pins a column with `==` or `IN` under AND (narrower conditions are ignored, which is
safe: every row returned still has the pinned value). A table read without such a condition, or
under OR, is a table-wide dependency. Rows come back as plain dicts (ORM entities as their column
attributes), so they serialize to any tier and cannot drag a session along.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import Table, inspect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Select, operators
from sqlalchemy.sql.elements import BinaryExpression, BindParameter, BooleanClauseList, ColumnElement
from sqlalchemy.sql.util import find_tables

from perfkit.cache.orm.deps import column_tag, note_column, table_tag, unknown_rows_tag


def _pinned(where: ColumnElement[Any] | None) -> dict[tuple[str, str], list[Any]]:
    """(table, column) -> values for `col == v` / `col IN (...)` conditions joined by AND."""
    out: dict[tuple[str, str], list[Any]] = {}
    if where is None:
        return out
    if isinstance(where, BooleanClauseList):
        if where.operator is not operators.and_:
            return out
        for clause in where.clauses:
            for k, v in _pinned(clause).items():
                out.setdefault(k, v)
        return out
    if isinstance(where, BinaryExpression) and isinstance(where.right, BindParameter):
        col = where.left
        table = getattr(col, "table", None)
        name = getattr(col, "name", None)
        if isinstance(table, Table) and isinstance(name, str):
            if where.operator is operators.eq and where.right.value is not None:
                out[table.name, name] = [where.right.value]
            elif where.operator is operators.in_op and where.right.value:
                out[table.name, name] = list(where.right.value)
    return out


def dependency_tags(stmt: Select[Any]) -> list[str]:
    pinned = _pinned(stmt.whereclause)
    tags: list[str] = []
    # a table also read through an alias (a self-join) depends on all its rows: the pinned condition
    # constrains only one of its occurrences
    tables: dict[str, Table] = {}
    aliased: set[str] = set()
    for found in find_tables(stmt, include_joins=True, include_aliases=True):
        if isinstance(found, Table):
            tables.setdefault(found.fullname, found)
        else:
            element = getattr(found, "element", None)
            if isinstance(element, Table):
                tables.setdefault(element.fullname, element)
                aliased.add(element.fullname)
    for name, table in tables.items():
        cols = [(col, vals) for (t, col), vals in pinned.items() if t == table.name]
        if not cols or name in aliased:
            tags.append(table_tag(table.name))
            continue
        col, vals = cols[0]  # one pinned column is enough to scope the dependency
        note_column(table.name, col)
        tags.extend(column_tag(table.name, col, v) for v in vals)
        tags.append(unknown_rows_tag(table.name))
    return sorted(set(tags))


def query_key(stmt: Select[Any]) -> str:
    compiled = stmt.compile()
    text = f"{compiled}|{sorted(compiled.params.items(), key=lambda kv: kv[0])!r}"
    return "query:" + hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _as_dicts(result: Any) -> list[dict[str, Any]]:
    rows = result.all()
    out = []
    for row in rows:
        if len(row) == 1 and hasattr(row[0], "__mapper__"):
            obj = row[0]
            out.append({attr.key: getattr(obj, attr.key) for attr in inspect(obj).mapper.column_attrs})
        else:
            out.append(dict(row._mapping))
    return out


def has_writes(session: Any) -> bool:
    """True when the session holds changes not yet committed: its answer must not be shared."""
    sync = getattr(session, "sync_session", session)
    if sync.new or sync.dirty or sync.deleted:
        return True
    return any(key.startswith("perfkit.pending") and pending for key, pending in sync.info.items())


async def run_query(session: Any, stmt: Select[Any]) -> list[dict[str, Any]]:
    if isinstance(session, AsyncSession):
        return _as_dicts(await session.execute(stmt))
    return _as_dicts(session.execute(stmt))
