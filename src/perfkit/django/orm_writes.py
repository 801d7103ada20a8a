"""Seeing every ORM write: the three SQL compilers every write goes through, wrapped once at start-up.

Why the compilers: `Model.save()`, `Model.delete()` (and its cascades and SET_NULLs), `QuerySet.update()`,
`bulk_update()`, `bulk_create()`, `QuerySet.delete()`, `get_or_create`/`update_or_create` and the M2M
managers (`add`, `remove`, `set`, `clear`) all end in `SQLInsertCompiler`, `SQLUpdateCompiler` or
`SQLDeleteCompiler.execute_sql`. Signals miss the bulk paths (and a `post_delete` receiver would switch
off Django's fast deletes for every model); a custom manager is what users forget. Raw SQL
(`cursor.execute`) is not seen.

Old values: an UPDATE or DELETE reads its rows' dependency columns with its own WHERE first. A
`save()` of an instance loaded from the database does not: the instance remembers the values of its
dependency columns as loaded (`from_db`) or last saved (a snapshot on `instance._state`), so a save
costs no extra query. An instance without them (made by hand with a pk, deferred fields) is read.
"""

from __future__ import annotations

import contextvars
import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from django.db.models.lookups import Exact

from perfkit.cache.depends import register_dependency_compiler, table_tag, unknown_rows_tag
from perfkit.cache.invalidations import Group
from perfkit.django.orm_apply import invalidator, record, strategy_of
from perfkit.django.orm_deps import compile_model_dependency, dependency_columns, meta, model_label, on_note
from perfkit.django.orm_rows import (
    UNKNOWN,
    Values,
    attnames,
    groups_for,
    literal_values,
    no_rows,
    pinned,
    pre_read,
)

__all__ = ["install", "installed", "uninstall"]

log = logging.getLogger("perfkit.django")
_saving: contextvars.ContextVar[Any] = contextvars.ContextVar("perfkit_django_saving", default=None)
_snap_fields: dict[Any, tuple[tuple[str, str], ...]] = {}  # model -> (column, attname) remembered
_originals: dict[str, Any] = {}  # our name -> Django's method
_targets: dict[str, tuple[type, str, bool]] = {}  # owner, name, defined there


def _fields(model: Any) -> tuple[tuple[str, str], ...]:
    found = _snap_fields.get(model)
    if found is None:
        deps, pk = set(dependency_columns(model)), meta(model).pk.column
        found = tuple(
            (str(f.column), str(f.attname))
            for f in meta(model).concrete_fields
            if f.column in deps and f.column != pk
        )
        _snap_fields[model] = found
    return found


def _snapshot(instance: Any, merge: bool) -> None:
    """Remember the dependency columns' values; `merge` (inside a transaction) keeps the old ones too,
    since a rollback brings them back."""
    fields = _fields(type(instance))
    if not fields:
        return
    d = instance.__dict__
    old = getattr(instance._state, "perfkit_loaded", None) if merge else None
    snap: dict[str, tuple[Any, ...]] = {}
    for col, att in fields:
        if att not in d:
            continue
        if old is None:
            snap[col] = (d[att],)
        elif col in old:  # a column not known before stays unknown (read at the next save)
            snap[col] = (*old[col], d[att])
    instance._state.perfkit_loaded = snap


def _from_db(cls: Any, db: str, field_names: Any, values: Any, *args: Any, **kwargs: Any) -> Any:
    new = _originals["from_db"].__func__(cls, db, field_names, values, *args, **kwargs)  # 6.1: fetch_mode
    if _fields(cls):
        _snapshot(new, merge=False)
    return new


def _refresh_from_db(self: Any, *args: Any, **kwargs: Any) -> None:
    _originals["refresh_from_db"](self, *args, **kwargs)
    fields = kwargs.get("fields", args[1] if len(args) > 1 else None)
    if fields is None:
        _snapshot(self, merge=False)
    else:  # only those fields are what the database has now; forget the others' snapshot entries
        self._state.perfkit_loaded = {}


def _save_base(self: Any, *args: Any, **kwargs: Any) -> None:
    state = self._state
    adding = state.adding
    token = _saving.set(self)
    try:
        _originals["save_base"](self, *args, **kwargs)
    finally:
        _saving.reset(token)
    if _fields(type(self)):  # in a transaction (set by the compilers' hooks), a rollback restores the old
        _snapshot(self, merge=not adding and getattr(state, "perfkit_in_atomic", True))


def _saved_row(query: Any, model: Any, cols: tuple[str, ...]) -> Values | None:
    """The old values of the row `Model.save()` is updating, from the instance's snapshot."""
    inst = _saving.get()
    if inst is None or not isinstance(inst, model):
        return None
    pk = str(meta(model).pk.column)
    children = query.where.children
    if len(children) != 1 or not isinstance(children[0], Exact) or children[0].rhs != inst.pk:
        return None
    if getattr(children[0].lhs.target, "column", None) != pk:
        return None
    snap = getattr(inst._state, "perfkit_loaded", None)
    if snap is None or any(c not in snap for c in cols if c != pk):
        return None
    out: Values = {c: set(snap[c]) for c in cols if c != pk}
    out[pk] = {inst.pk}
    return out


def _plan_update(compiler: Any) -> list[Group]:
    query, using = compiler.query, compiler.using
    model = query.model
    if not query.values:
        return []
    cols = dependency_columns(model)
    values = _saved_row(query, model, cols) or pre_read(query, using, model, cols)
    if no_rows(values):
        return []
    if values is not None:
        for field, _, val in query.values:
            if field.column in cols:
                found = literal_values(val)
                values.setdefault(field.column, set()).update(found if found is not None else [UNKNOWN])
    return groups_for(model, values, using)


def _plan_delete(compiler: Any) -> list[Group]:
    query, using = compiler.query, compiler.using
    model = query.model
    cols = dependency_columns(model)
    pins = pinned(query)
    if cols == (meta(model).pk.column,) and set(pins) == set(cols):  # the pks are in the WHERE
        return groups_for(model, {c: set(v) for c, v in pins.items()}, using)
    values = pre_read(query, using, model, cols)
    return [] if no_rows(values) else groups_for(model, values, using)


def _plan_insert(compiler: Any, rows: Any, returning: Any) -> list[Group]:
    query, using = compiler.query, compiler.using
    model = query.model
    cols, names, pk = dependency_columns(model), attnames(model), meta(model).pk
    at = next((i for i, f in enumerate(returning or ()) if f.column == pk.column), None)
    values: Values = defaultdict(set)
    for i, obj in enumerate(query.objs):
        for col in cols:
            v = getattr(obj, names[col], None)
            if v is None and col == pk.column:
                v = rows[i][at] if at is not None and rows and i < len(rows) else UNKNOWN
            values[col].add(UNKNOWN if hasattr(v, "resolve_expression") else v)
    return groups_for(model, values, using, unknown=query.on_conflict is not None)


def _guarded(plan: Callable[[], list[Group]], model: Any) -> list[Group]:
    """The plan, or (should reading it fail) the whole table: correct first."""
    try:
        return plan()
    except Exception:
        log.warning("perfkit: could not read the rows of a write to %s; invalidating the table", model)
        return _table_wide(model)


def _table_wide(model: Any) -> list[Group]:
    table = meta(model).db_table
    return [(model_label(model), strategy_of(model), {table_tag(table), unknown_rows_tag(table)})]


def _note_saving(compiler: Any) -> None:
    """Tell a saving instance whether its write is inside a transaction (for its snapshot)."""
    inst = _saving.get()
    if inst is not None:
        inst._state.perfkit_in_atomic = compiler.connection.in_atomic_block


def _insert_execute(self: Any, *args: Any, **kwargs: Any) -> Any:
    rows = _originals["insert"](self, *args, **kwargs)
    if not invalidator.caches:  # no cache watched yet: no rows to read, the table marks the transaction
        record(self.connection, _table_wide(self.query.model))
        _note_saving(self)
        return rows
    returning = kwargs.get("returning_fields", args[0] if args else None)
    record(self.connection, _guarded(lambda: _plan_insert(self, rows, returning), self.query.model))
    _note_saving(self)
    return rows


def _update_execute(self: Any, *args: Any, **kwargs: Any) -> Any:
    if not invalidator.caches:
        result = _originals["update"](self, *args, **kwargs)
        record(self.connection, _table_wide(self.query.model))
        _note_saving(self)
        return result
    groups = _guarded(lambda: _plan_update(self), self.query.model)
    result = _originals["update"](self, *args, **kwargs)
    record(self.connection, groups)
    _note_saving(self)
    return result


def _delete_execute(self: Any, *args: Any, **kwargs: Any) -> Any:
    if not invalidator.caches:
        result = _originals["delete"](self, *args, **kwargs)
        record(self.connection, _table_wide(self.query.model))
        return result
    groups = _guarded(lambda: _plan_delete(self), self.query.model)
    result = _originals["delete"](self, *args, **kwargs)
    record(self.connection, groups)
    return result


def _patches() -> list[tuple[str, type, str, Any]]:
    from django.db.models import Model
    from django.db.models.sql import compiler

    return [
        ("insert", compiler.SQLInsertCompiler, "execute_sql", _insert_execute),
        ("update", compiler.SQLUpdateCompiler, "execute_sql", _update_execute),
        ("delete", compiler.SQLDeleteCompiler, "execute_sql", _delete_execute),
        ("save_base", Model, "save_base", _save_base),
        ("refresh_from_db", Model, "refresh_from_db", _refresh_from_db),
        ("from_db", Model, "from_db", classmethod(_from_db)),
    ]


def install() -> None:
    """Wrap the write paths (once; `PerfkitConfig.ready()` calls it)."""
    register_dependency_compiler(compile_model_dependency)
    on_note(lambda model: _snap_fields.clear())
    if _originals:
        return
    for ours, owner, name, replacement in _patches():
        # SQLDeleteCompiler inherits execute_sql: wrap the inherited one, on the subclass only
        _originals[ours] = owner.__dict__.get(name) or getattr(owner, name)
        _targets[ours] = (owner, name, name in owner.__dict__)
        setattr(owner, name, replacement)


def uninstall() -> None:
    """Put Django's own methods back (benchmarks compare with and without; tests)."""
    for ours, original in list(_originals.items()):
        owner, name, own = _targets[ours]
        if own:
            setattr(owner, name, original)
        else:
            delattr(owner, name)
    _originals.clear()


def installed() -> bool:
    return bool(_originals)
