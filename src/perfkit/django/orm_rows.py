"""From a write statement to the tags it touches: the rows' values, read where they are not known.

A changed row reports every dependency column (`orm_deps.dependency_columns`) with its old and new
values: `dep:<table>`, `dep:<table>.<column>=<value>`, and `dep:<table>!` where a value cannot be
known (an expression like `F("x") + 1`, a database default, an upsert). The rows of an UPDATE or
DELETE are read first with the statement's own WHERE, in its transaction (`pre_read`). A model in the
relationship map passes the change to its parent rows: their primary key, the parent table, and the
parent rows' own dependency columns (read in the same transaction).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db.models import Case, Model, QuerySet, Value
from django.db.models.functions import Cast
from django.db.models.lookups import Exact, In
from django.db.models.sql import Query
from django.db.models.sql.where import AND

from perfkit.cache.depends import column_tag, table_tag, unknown_rows_tag
from perfkit.cache.invalidations import Group
from perfkit.django.orm_apply import profile
from perfkit.django.orm_deps import dependency_columns, meta, model_label

__all__ = [
    "UNKNOWN",
    "Values",
    "attnames",
    "groups_for",
    "literal_values",
    "no_rows",
    "pinned",
    "pre_read",
]

Values = dict[str, set[Any]]  # column -> the values it had or gets
UNKNOWN: Any = object()  # a value that cannot be known


def attnames(model: Any) -> dict[str, str]:
    """column -> attname for the model's concrete fields."""
    return {str(f.column): str(f.attname) for f in meta(model).concrete_fields}


def literal_values(val: Any) -> list[Any] | None:
    """The values an UPDATE assigns: a plain value, a model instance (its pk), `Value(x)`, or the
    `Case(When(pk=..., then=Value(x)), ...)` that `bulk_update` builds; None when not knowable."""
    if isinstance(val, Model):
        return [val.pk]
    if isinstance(val, Value):
        return literal_values(val.value)
    if isinstance(val, Cast):
        return literal_values(val.source_expressions[0])
    if isinstance(val, Case):
        out: list[Any] = []
        for branch in [*(w.result for w in val.cases), val.default]:
            found = literal_values(branch)
            if found is None:
                return None
            out.extend(found)
        return out
    if hasattr(val, "resolve_expression"):
        return None
    return [val]


def pinned(query: Any) -> dict[str, list[Any]]:
    """column -> values for `col = v` / `col IN (...)` on the base table, joined by AND."""
    alias = query.base_table
    out: dict[str, list[Any]] = {}

    def walk(node: Any) -> None:
        if getattr(node, "negated", False) or getattr(node, "connector", AND) != AND:
            return
        for child in getattr(node, "children", ()):
            if hasattr(child, "children"):
                walk(child)
            elif isinstance(child, Exact | In) and getattr(child.lhs, "alias", None) == alias:
                rhs = child.rhs
                if hasattr(rhs, "resolve_expression") or rhs is None:
                    continue
                column = getattr(child.lhs.target, "column", None)
                if column is not None:
                    out.setdefault(str(column), list(rhs) if isinstance(child, In) else [rhs])

    walk(query.where)
    return out


def pre_read(query: Any, using: str, model: Any, columns: Iterable[str]) -> Values | None:
    """The distinct values of `columns` in the rows `query`'s WHERE selects (None: all rows)."""
    if not query.where.children:
        return None
    cols = list(columns)
    names = attnames(model)
    q = query.chain(klass=Query)
    q.clear_ordering(force=True)
    qs = QuerySet(model=model, query=q, using=using)
    found: Values = {c: set() for c in cols}
    for row in qs.values_list(*[names[c] for c in cols]).distinct():
        for col, value in zip(cols, row, strict=True):
            found[col].add(value)
    return found


def no_rows(values: Values | None) -> bool:
    """A pre-read that found no row: the statement changes nothing."""
    return values is not None and not any(values.values())


def _tags(table: str, values: Values | None, unknown: bool) -> set[str]:
    tags = {table_tag(table)}
    if values is None or unknown:
        tags.add(unknown_rows_tag(table))
    for col, vals in (values or {}).items():
        for v in vals:
            if v is UNKNOWN:
                tags.add(unknown_rows_tag(table))
            elif v is not None:
                tags.add(column_tag(table, col, v))
    return tags


def _parent_tags(parent: Any, column: str, refs: set[Any], using: str) -> set[str]:
    """Tags of the parent rows whose `column` is in `refs`, with their own dependency columns."""
    table = meta(parent).db_table
    tags = {table_tag(table)}
    known = {v for v in refs if v is not UNKNOWN and v is not None}
    if UNKNOWN in refs:
        tags.add(unknown_rows_tag(table))
    if not known:
        return tags
    cols = dependency_columns(parent)
    names = attnames(parent)
    manager = parent._base_manager.db_manager(using)
    rows = manager.filter(**{f"{names[column]}__in": known}).values_list(*[names[c] for c in cols])
    tags.update(column_tag(table, column, v) for v in known)
    for row in rows:
        tags.update(column_tag(table, c, v) for c, v in zip(cols, row, strict=True) if v is not None)
    return tags


def groups_for(model: Any, values: Values | None, using: str, unknown: bool = False) -> list[Group]:
    """The groups (model, strategy, tags) of a write to `model`'s rows with these column values."""
    label, own, table, parents = profile(model)
    groups: list[Group] = [(label, own, _tags(table, values, unknown))]
    for parent, strategy in parents:
        tags: set[str] = set()
        for field in meta(model).concrete_fields:
            if not field.is_relation or field.related_model is not parent:
                continue
            refs = {UNKNOWN} if values is None or unknown else values.get(field.column, {UNKNOWN})
            tags |= _parent_tags(parent, str(field.target_field.column), refs, using)
        if tags:
            groups.append((model_label(parent), strategy, tags))
    return groups
