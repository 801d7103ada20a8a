"""Model instances as plain values and back, for `cache_queryset`: no pickle, `Model.from_db` to rebuild.

    {"fields": [attnames loaded], "rows": [[values] or None, ...],
     "related": {"organization": {...the same, one row per parent...}}}

`select_related("organization", "assignee__profile")` objects are stored along (forward foreign keys
and one-to-ones; `select_related()` with no names is refused: name the relations). Values are
converted back with each field's `to_python` (a shared tier gives back a `Decimal` as a str, a `date`
as an ISO string).
"""

from __future__ import annotations

from typing import Any

from perfkit.django.orm_deps import meta
from perfkit.errors import InvalidArgumentError

__all__ = ["dump_instances", "load_instances", "related_tree"]


def related_tree(queryset: Any) -> dict[str, Any]:
    """The `select_related` names as a tree ({} without select_related)."""
    tree = queryset.query.select_related
    if tree is True:
        raise InvalidArgumentError(
            "cache_queryset: select_related() without names is not cached; name the relations, "
            "e.g. select_related('organization')"
        )
    return tree or {}


def _relation(model: Any, name: str) -> Any:
    field = meta(model).get_field(name)
    if not field.concrete or not (field.many_to_one or field.one_to_one):
        raise InvalidArgumentError(
            f"cache_queryset: select_related({name!r}) of {meta(model).label} is not a forward "
            "foreign key or one-to-one; it is not cached"
        )
    return field


def dump_instances(model: Any, objs: list[Any], tree: dict[str, Any]) -> dict[str, Any]:
    present = [o for o in objs if o is not None]
    names = [f.attname for f in meta(model).concrete_fields]
    fields = [a for a in names if not present or a in present[0].__dict__]
    rows = [None if o is None else [o.__dict__[a] for a in fields] for o in objs]
    related = {}
    for name, sub in tree.items():
        field = _relation(model, name)
        found = [None if o is None else field.get_cached_value(o, None) for o in objs]
        related[name] = dump_instances(field.related_model, found, sub)
    return {"fields": fields, "rows": rows, "related": related}


def load_instances(model: Any, db: str, stored: dict[str, Any]) -> list[Any]:
    fields = stored["fields"]
    by_att = {f.attname: f for f in meta(model).concrete_fields}
    convert = [by_att[a].to_python for a in fields]
    objs = [
        None
        if row is None
        else model.from_db(
            db, fields, [None if v is None else c(v) for c, v in zip(convert, row, strict=True)]
        )
        for row in stored["rows"]
    ]
    for name, sub in stored["related"].items():
        field = _relation(model, name)
        for obj, rel in zip(objs, load_instances(field.related_model, db, sub), strict=True):
            if obj is not None:
                field.set_cached_value(obj, rel)
    return objs
