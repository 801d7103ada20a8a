"""What a cached value reads, for Django models: `depends_on=[Ticket]`, `rows(Ticket, organization_id=...)`.

The tags are perfkit's dependency tags (`perfkit.cache.depends`) over the model's database table and
column names, so a value cached here and a write seen by the SQLAlchemy integration meet too:

    depends_on=[Ticket]                                   dep:tickets_ticket
    depends_on=[rows(Ticket, organization_id="{org_id}")] dep:tickets_ticket.organization_id=7 (+ ...!)
    depends_on=["tickets.Ticket"]                         a model by its label, resolved at first use
    depends_on=[("Ticket", "organization_id", "{org_id}")] the issue's tuple form, the same as rows()

Writers report a row's primary key, its foreign keys and every column a `rows(...)` or a cached
queryset in this process pins (`dependency_columns`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from perfkit.cache.depends import TagBuilder, column_tag, fill, table_tag, unknown_rows_tag
from perfkit.errors import InvalidArgumentError

__all__ = [
    "Rows",
    "compile_model_dependency",
    "dependency_columns",
    "is_model",
    "meta",
    "model_label",
    "note_column",
    "resolve_model",
    "rows",
]

_lock = threading.Lock()
_noted: dict[str, set[str]] = {}  # db_table -> columns some cached value pins
_columns: dict[Any, tuple[str, ...]] = {}  # model -> its dependency columns (cleared when one is noted)
_on_note: list[Callable[[Any], None]] = []  # told when a model gains a column (the snapshot hook)


def is_model(obj: Any) -> bool:
    from django.db.models import Model

    meta: Any = getattr(obj, "_meta", None)
    return isinstance(obj, type) and issubclass(obj, Model) and not meta.abstract


def meta(model: Any) -> Any:
    """A model's `_meta` (Django's documented Options API): the one place perfkit reads it."""
    return getattr(model, "_meta", None)


def model_label(model: Any) -> str:
    return str(model._meta.label)


def resolve_model(ref: Any) -> Any:
    """A model class from a class, `"app_label.Model"` or a bare model name (unique in the project)."""
    if is_model(ref):
        return ref
    if not isinstance(ref, str) or not ref:
        raise InvalidArgumentError(f"{ref!r} is not a Django model, 'app_label.Model' or a model name")
    from django.apps import apps

    if "." in ref:
        try:
            return apps.get_model(ref)
        except (LookupError, ValueError) as exc:
            raise InvalidArgumentError(f"depends_on model {ref!r}: {exc}") from None
    found = [m for m in apps.get_models(include_auto_created=True) if m.__name__ == ref]
    if len(found) != 1:
        what = "no model" if not found else f"{len(found)} models ({', '.join(map(model_label, found))})"
        raise InvalidArgumentError(f"depends_on model {ref!r}: {what} by that name; use 'app_label.Model'")
    return found[0]


def column_of(model: Any, name: str) -> str:
    """The database column of field `name` (a field name, an attname like `organization_id`, or pk)."""
    opts = model._meta
    if name == "pk":
        return str(opts.pk.column)
    for field in opts.concrete_fields:
        if name in (field.name, field.attname):
            return str(field.column)
    known = sorted({f.attname for f in opts.concrete_fields} | {f.name for f in opts.concrete_fields})
    raise InvalidArgumentError(f"{model_label(model)} has no column field {name!r}; fields: {known}")


def note_column(model: Any, column: str) -> None:
    """Some cached value pins `model`'s `column`: writers must report its old and new values."""
    table = model._meta.db_table
    with _lock:
        known = _noted.setdefault(table, set())
        if column in known:
            return
        known.add(column)
        _columns.clear()
    for hook in list(_on_note):
        hook(model)


def on_note(hook: Callable[[Any], None]) -> None:
    if hook not in _on_note:
        _on_note.append(hook)


def dependency_columns(model: Any) -> tuple[str, ...]:
    """The columns a write to `model`'s table reports: primary key, foreign keys, pinned columns."""
    found = _columns.get(model)
    if found is None:
        opts = model._meta
        cols = [str(opts.pk.column)]
        cols += [str(f.column) for f in opts.concrete_fields if f.is_relation and f.column not in cols]
        noted = _noted.get(opts.db_table, set())
        cols += sorted(c for c in noted if c not in cols)
        _columns[model] = found = tuple(cols)
    return found


class Rows:
    """`rows(Ticket, organization_id="{org_id}")`: the rows of a model whose column has (or gets) a
    value. One lookup per call (`field=value` or `field__in=[...]`); the value may be a template filled
    from the cached function's arguments, like the key."""

    def __init__(self, model: Any, **lookup: Any) -> None:
        if len(lookup) != 1:
            raise InvalidArgumentError(
                f"rows({model!r}, ...) takes one lookup, like organization_id='{{org_id}}'; "
                f"got {sorted(lookup)}"
            )
        ((name, value),) = lookup.items()
        many = name.endswith("__in")
        self.model_ref, self.field, self.value, self.many = model, name.removesuffix("__in"), value, many
        if many and (isinstance(value, str | bytes) or not hasattr(value, "__iter__")):
            raise InvalidArgumentError(f"rows(..., {name}=...) needs a list of values, not {value!r}")
        if is_model(model):
            column_of(model, self.field)  # a typo fails where it is written

    def __perfkit_dependency__(self, cache: Any) -> TagBuilder:
        watch_cache(cache)
        state: dict[str, Any] = {}

        def build(values: Mapping[str, Any]) -> list[str]:
            if not state:  # resolved at first use: a label may name a model not loaded at import
                model = resolve_model(self.model_ref)
                column = column_of(model, self.field)
                note_column(model, column)
                state.update(table=model._meta.db_table, column=column)
            table, column = state["table"], state["column"]
            items = list(self.value) if self.many else [self.value]
            out = [column_tag(table, column, fill(v, values)) for v in items]
            out.append(unknown_rows_tag(table))
            return out

        return build

    def __repr__(self) -> str:
        return f"rows({self.model_ref!r}, {self.field}{'__in' if self.many else ''}={self.value!r})"


def rows(model: Any, **lookup: Any) -> Rows:
    """A row-scoped dependency: `depends_on=[rows(Ticket, organization_id="{org_id}")]`."""
    return Rows(model, **lookup)


def _table_dependency(ref: Any) -> TagBuilder:
    state: list[str] = []

    def build(values: Mapping[str, Any]) -> list[str]:
        if not state:
            state.append(table_tag(resolve_model(ref)._meta.db_table))
        return state

    return build


def compile_model_dependency(dep: Any, cache: Any) -> TagBuilder | None:
    """The dependency compiler perfkit.django registers: model classes, labels, and the tuple form."""
    if is_model(dep) or (isinstance(dep, str) and "." in dep and not dep.startswith("dep:")):
        if is_model(dep):
            resolve_model(dep)
        watch_cache(cache)
        return _table_dependency(dep)
    if isinstance(dep, tuple) and len(dep) == 3 and isinstance(dep[1], str):
        model, field, value = dep
        if is_model(model) or isinstance(model, str):
            return Rows(model, **{field: value}).__perfkit_dependency__(cache)
    return None


def watch_cache(cache: Any) -> None:
    if cache is not None:
        from perfkit.django.orm_apply import watch

        watch(cache)
