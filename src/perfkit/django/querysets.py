"""`cache_queryset(cache, qs, ttl=300)`: a queryset's rows, cached and invalidated by writes to what it reads.

    tickets = cache_queryset(cache, Ticket.objects.filter(organization_id=7).order_by("id"), ttl=300)

The key is the SQL, its parameters and the database alias. The dependencies are every table the SQL
reads (joins and subqueries); the base table narrowed to `column = v` / `column IN (...)` when the
WHERE pins one under AND (`filter(organization_id=7)` depends on organization 7's tickets only).
Model rows are stored as field values and rebuilt with `Model.from_db` (`orm_store`; no pickle: a cache
shared with other programs cannot run code here), `select_related(...)` objects with them;
`values()` and `values_list()` rows as lists. `prefetch_related()` is refused (its objects are not
stored). A queryset run in a
transaction that has written rows not committed yet is evaluated but not cached: its answer holds them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from perfkit.cache.depends import column_tag, table_tag, unknown_rows_tag
from perfkit.cache.keys import TTL, UNSET, Unset
from perfkit.django.orm_apply import has_pending, watch
from perfkit.django.orm_deps import meta, note_column
from perfkit.django.orm_rows import pinned
from perfkit.django.orm_store import dump_instances, load_instances, related_tree
from perfkit.errors import InvalidArgumentError

__all__ = ["acache_queryset", "cache_queryset", "queryset_key", "queryset_tags"]


def _tables() -> dict[str, Any]:
    from django.apps import apps

    return {meta(m).db_table: m for m in apps.get_models(include_auto_created=True)}


def queryset_tags(queryset: Any, sql: str) -> list[str]:
    """The dependency tags of a queryset whose SQL is `sql`."""
    from django.db import connections

    quote = connections[queryset.db].ops.quote_name
    base = meta(queryset.model).db_table
    tags: set[str] = set()
    for table in _tables():
        if quote(table) in sql and table != base:
            tags.add(table_tag(table))
    q = quote(base)
    pins = pinned(queryset.query)
    self_joined = sql.count(f"FROM {q}") + sql.count(f"JOIN {q}") > 1  # a self-join or a subquery
    if not pins or self_joined:
        tags.add(table_tag(base))
        return sorted(tags)
    pk = meta(queryset.model).pk.column
    column = pk if pk in pins else next(iter(pins))
    note_column(queryset.model, column)
    tags.update(column_tag(base, column, v) for v in pins[column])
    tags.add(unknown_rows_tag(base))
    return sorted(tags)


def queryset_key(queryset: Any, sql: str, params: Any) -> str:
    text = f"{queryset.db}|{meta(queryset.model).label}|{queryset._iterable_class.__name__}|{sql}|{params!r}"
    return "djqs:" + hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _dump(queryset: Any) -> dict[str, Any]:
    from django.db.models.query import ModelIterable

    qs = queryset._chain()
    if qs._iterable_class is not ModelIterable:
        rows = list(qs)
        first = rows[0] if rows else None
        names = list(first) if isinstance(first, dict) else list(getattr(first, "_fields", ()))
        return {"names": names, "rows": [list(r.values()) if isinstance(r, dict) else _row(r) for r in rows]}
    objs = list(qs)
    annotations = list(qs.query.annotation_select)
    stored = dump_instances(qs.model, objs, related_tree(qs))
    stored["annotations"] = {n: [getattr(o, n) for o in objs] for n in annotations}
    return stored


def _row(row: Any) -> list[Any]:
    return list(row) if isinstance(row, tuple) else [row]


def _load(queryset: Any, stored: dict[str, Any]) -> list[Any]:
    from django.db.models.query import (
        FlatValuesListIterable,
        ModelIterable,
        NamedValuesListIterable,
        ValuesIterable,
    )
    from django.db.models.utils import create_namedtuple_class

    kind, rows = queryset._iterable_class, stored["rows"]
    if kind is ModelIterable:
        objs = load_instances(queryset.model, queryset.db, stored)
        for name, values in stored["annotations"].items():
            for obj, value in zip(objs, values, strict=True):
                setattr(obj, name, value)
        return objs
    names = stored["names"]
    if kind is ValuesIterable:
        return [dict(zip(names, row, strict=True)) for row in rows]
    if kind is FlatValuesListIterable:
        return [row[0] for row in rows]
    if kind is NamedValuesListIterable:
        cls = create_namedtuple_class(*names)
        return [cls(*row) for row in rows]
    return [tuple(row) for row in rows]


def _prepare(queryset: Any) -> tuple[str, Any] | None:
    """(sql, params) of a cacheable queryset; None when it selects nothing (an empty IN)."""
    from django.core.exceptions import EmptyResultSet

    if queryset._prefetch_related_lookups:
        raise InvalidArgumentError(
            "cache_queryset: prefetch_related() querysets are not cached (the prefetched objects "
            "would not be stored); cache the related rows in a queryset of their own"
        )
    related_tree(queryset)  # a select_related() this cannot store is refused before any query
    try:
        sql, params = queryset.query.get_compiler(using=queryset.db).as_sql()
    except EmptyResultSet:
        return None
    return sql, params


def cache_queryset(cache: Any, queryset: Any, ttl: TTL | Unset = None, tags: Iterable[str] = ()) -> list[Any]:
    """The rows of `queryset` (model instances, dicts or tuples as it yields), from `cache` when
    there; invalidated by commits that change what it reads. `ttl=None`: the cache's default TTL."""
    prepared = _prepare(queryset)
    if prepared is None:
        return []
    if has_pending(queryset.db):  # it would read (and we would share) this transaction's own rows
        return list(queryset._chain())
    sql, params = prepared
    watch(cache)
    stored = cache.sync.get_or_set(
        queryset_key(queryset, sql, params),
        lambda: _dump(queryset),
        UNSET if ttl is None else ttl,
        tags=[*queryset_tags(queryset, sql), *tags],
    )
    return _load(queryset, stored)


async def acache_queryset(
    cache: Any, queryset: Any, ttl: TTL | Unset = None, tags: Iterable[str] = ()
) -> list[Any]:
    """`cache_queryset` for async views: the queryset runs in Django's sync thread."""
    from asgiref.sync import sync_to_async

    prepared = await sync_to_async(_prepare)(queryset)
    if prepared is None:
        return []
    if await sync_to_async(has_pending)(queryset.db):
        return await sync_to_async(lambda: list(queryset._chain()))()
    sql, params = prepared
    watch(cache)
    stored = await cache.get_or_set(
        queryset_key(queryset, sql, params),
        sync_to_async(lambda: _dump(queryset)),
        UNSET if ttl is None else ttl,
        tags=[*queryset_tags(queryset, sql), *tags],
    )
    return _load(queryset, stored)
