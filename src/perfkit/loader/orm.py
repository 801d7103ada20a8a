"""Loaders for SQLAlchemy: a relationship, or rows by a column; one SELECT per batch.

    comments = relationship_loader(session, Ticket.comments)     # the fix for an N+1 on Ticket.comments
    by_ticket = await comments.load_many(tickets)                 # SELECT ... WHERE ticket_id IN (...)

    users = keyed_loader(session, User.id)                        # User or None per id
    orders = keyed_loader(session, WorkOrder.ticket_id, many=True)    # a list per ticket id

Keys are parent instances or the joining column's values (`ticket` or `ticket.id`). A loaded parent
instance gets the relationship set as if it had been eager-loaded (`set_committed_value`), so reading
`ticket.comments` afterwards runs no query. The session (sync or async) is the request's, so the loader
is its own scope (`scoped=False`): it lives and dies with the session. A relationship through a
secondary table, or on several columns, is refused with an `InvalidArgumentError`.
"""

from __future__ import annotations

import inspect
from collections.abc import Hashable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import ColumnProperty, RelationshipProperty
from sqlalchemy.orm.attributes import InstrumentedAttribute, set_committed_value

from perfkit.errors import InvalidArgumentError
from perfkit.loader.core import Loader

__all__ = ["keyed_loader", "relationship_loader"]


async def _scalars(session: Any, statement: Any) -> list[Any]:
    result = session.scalars(statement)
    if inspect.isawaitable(result):
        result = await result
    return list(result.all())


def _group(rows: list[Any], attr: str, many: bool) -> dict[Any, Any]:
    out: dict[Any, Any] = {}
    for row in rows:
        value = getattr(row, attr)
        if many:
            out.setdefault(value, []).append(row)
        else:
            out.setdefault(value, row)
    return out


def relationship_loader(session: Any, relationship: Any, **options: Any) -> Loader[Any, Any]:
    """A loader of `relationship` (`Ticket.comments`, `Comment.ticket`) for parents in `session`; the
    other `Loader` options (max_batch, priority, fallback, timeout, name, ...) pass through."""
    prop = getattr(relationship, "property", None)
    if not isinstance(prop, RelationshipProperty):
        raise InvalidArgumentError(
            f"relationship_loader needs a relationship attribute, not {relationship!r}"
        )
    name = f"{prop.parent.class_.__name__}.{prop.key}"
    if prop.secondary is not None or len(prop.local_remote_pairs or ()) != 1:
        raise InvalidArgumentError(
            f"relationship_loader: {name} joins through a secondary table or several columns; "
            "use keyed_loader on the association's column instead"
        )
    local_col, remote_col = prop.local_remote_pairs[0]
    parent_cls = prop.parent.class_
    local = prop.parent.get_property_by_column(local_col).key
    remote = prop.mapper.get_property_by_column(remote_col).key
    target = prop.mapper.class_
    remote_attr = getattr(target, remote)
    many = bool(prop.uselist)
    order = prop.order_by if prop.order_by is not False else ()

    def key_of(key: Any) -> Hashable:
        return getattr(key, local) if isinstance(key, parent_cls) else key  # type: ignore[no-any-return]

    async def batch(keys: list[Any]) -> list[Any]:
        values = list(dict.fromkeys(key_of(k) for k in keys if key_of(k) is not None))
        found: dict[Any, Any] = {}
        if values:
            statement = select(target).where(remote_attr.in_(values))
            if order:
                statement = statement.order_by(*order)
            found = _group(await _scalars(session, statement), remote, many)
        out = []
        for k in keys:
            value = found.get(key_of(k), [] if many else None)
            if isinstance(k, parent_cls):
                set_committed_value(k, prop.key, value)  # `ticket.comments` now reads without a query
            out.append(value)
        return out

    options.setdefault("name", name)
    options.setdefault("scoped", False)
    return Loader(batch, key_fn=key_of, **options)


def keyed_loader(session: Any, column: Any, *, many: bool = False, **options: Any) -> Loader[Any, Any]:
    """A loader of rows by `column` (`User.id`: the row or None; `many=True`: the list of rows)."""
    prop = getattr(column, "property", None)
    if not isinstance(column, InstrumentedAttribute) or not isinstance(prop, ColumnProperty):
        raise InvalidArgumentError(f"keyed_loader needs a mapped column attribute, not {column!r}")
    target = prop.parent.class_
    attr = prop.key

    async def batch(keys: list[Any]) -> list[Any]:
        values = list(dict.fromkeys(k for k in keys if k is not None))
        found: dict[Any, Any] = {}
        if values:
            found = _group(await _scalars(session, select(target).where(column.in_(values))), attr, many)
        return [found.get(k, [] if many else None) for k in keys]

    options.setdefault("name", f"{target.__name__}.{attr}")
    options.setdefault("scoped", False)
    return Loader(batch, **options)
