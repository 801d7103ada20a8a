"""Which caches Django writes invalidate, the relationship map, and "after commit only".

`record(alias, groups)` is called after each write statement with the tags it touched. Inside a
transaction the groups wait in one `transaction.on_commit` callback per savepoint level (consecutive
writes share it), so Django's own rules apply: a rollback drops them, a rolled-back savepoint drops its
own, the outermost commit runs them. Outside a transaction (autocommit) the statement has committed
already: they are applied at once. Applying is `perfkit.cache.invalidations.Invalidations` (the
strategies, shared with the SQLAlchemy integration) over every watched cache.
"""

from __future__ import annotations

import logging
import weakref
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from django.db import connections

from perfkit.cache.changes import Observer
from perfkit.cache.invalidations import Group, Invalidations, check_strategy
from perfkit.django.orm_deps import meta, model_label, resolve_model

__all__ = [
    "DjangoInvalidator",
    "has_pending",
    "invalidator",
    "parents_of",
    "profile",
    "record",
    "register",
    "strategy_of",
    "unwatch",
    "watch",
    "watched",
]

log = logging.getLogger("perfkit.django")


class DjangoInvalidator:
    """The process's Django invalidator: the watched caches, the relationship map, the appliers."""

    def __init__(self) -> None:
        self.caches: weakref.WeakSet[Any] = weakref.WeakSet()
        self.own: dict[str, str] = {}  # model label -> strategy of its own writes
        self.parents: dict[str, list[tuple[Any, str]]] = defaultdict(list)  # child -> [(parent, strategy)]
        self.applied = Invalidations(lambda: list(self.caches))
        self.profiles: dict[Any, tuple[str, str, str, list[tuple[Any, str]]]] = {}  # see profile()

    def watch(self, cache: Any) -> None:
        if cache not in self.caches:
            self.caches.add(cache)
            cache.add_invalidator(self)  # the cache's "nobody invalidates these tags" warning stays quiet

    def unwatch(self, cache: Any) -> None:
        self.caches.discard(cache)
        cache.remove_invalidator(self)

    def on_change(self, observer: Observer) -> Callable[[], None]:
        """Call `observer(RowsChanged(model label, tags))` once per changed model after each commit,
        once its dependents are invalidated (perfkit.cache.changes); returns a function that removes it."""
        return self.applied.observers.add(observer)

    def register(self, model: Any, related: Iterable[Any] = (), strategy: str = "immediate") -> None:
        check_strategy(strategy)
        self.profiles.clear()
        parent = resolve_model(model)
        self.own[model_label(parent)] = strategy
        for child in related:
            label = model_label(resolve_model(child))
            self.parents[label] = [(p, s) for p, s in self.parents[label] if p is not parent]
            self.parents[label].append((parent, strategy))


invalidator = DjangoInvalidator()


def watch(cache: Any) -> None:
    """Invalidate `cache` on Django writes. `depends_on=[...]` with Django models and
    `cache_queryset(cache, ...)` do it for you; call it for values you tag with `dep:` tags yourself."""
    invalidator.watch(cache)


def unwatch(cache: Any) -> None:
    """Stop invalidating `cache` (before closing it)."""
    invalidator.unwatch(cache)


def watched() -> list[Any]:
    return list(invalidator.caches)


def register(model: Any, related: Iterable[Any] = (), strategy: str = "immediate") -> None:
    """Writes to `model` use `strategy` ("immediate", "delayed" or "batch"); a write to a `related`
    model (one with a foreign key to `model`, or an M2M `through` model) also invalidates the
    dependents of the `model` rows it points to, with that strategy."""
    invalidator.register(model, related, strategy)


def strategy_of(model: Any) -> str:
    return invalidator.own.get(model_label(model), "immediate")


def parents_of(model: Any) -> list[tuple[Any, str]]:
    """The models whose rows a write to `model` reaches: the relationship map, and for an
    auto-created M2M table (`ticket.tags.add(...)`) both of its ends."""
    found = list(invalidator.parents.get(model_label(model), ()))
    if meta(model).auto_created:
        for field in meta(model).concrete_fields:
            end = field.related_model if field.is_relation else None
            if end is not None and all(p is not end for p, _ in found):
                found.append((end, strategy_of(end)))
    return found


def profile(model: Any) -> tuple[str, str, str, list[tuple[Any, str]]]:
    """(label, strategy, table, parents) of a model, looked up once per `register()` state."""
    found = invalidator.profiles.get(model)
    if found is None:
        found = (model_label(model), strategy_of(model), str(meta(model).db_table), parents_of(model))
        invalidator.profiles[model] = found
    return found


class _Pending:
    """One on_commit callback: the groups of the writes made at one savepoint level."""

    def __init__(self) -> None:
        self.groups: list[Group] = []

    def __call__(self) -> None:
        apply(self.groups)


def apply(groups: list[Group], notify: bool = True) -> None:
    applied = invalidator.applied
    try:
        if len(groups) == 1 and groups[0][1] == "immediate":  # the common case: one model, now
            applied.apply_sync(groups, notify)
        else:
            applied.dispatch_sync(groups, notify)
    except Exception:  # a cache fault degrades (stale until TTL), never fails the committed request
        log.exception("perfkit: cache invalidation after commit failed")


def record(conn: Any, groups: list[Group]) -> None:
    """Hold `groups` until the transaction on `conn` (a Django DatabaseWrapper) commits; apply them
    now in autocommit."""
    if not groups:
        return
    if not conn.in_atomic_block:
        # manual transactions (autocommit off) have not committed yet: observers hear of the pass below
        apply(groups, notify=conn.autocommit)
        if not conn.autocommit:  # manual transactions: no on_commit; once more after a moment
            for model, _, tags in groups:
                invalidator.applied.schedule("delayed", model, tags)
        return
    pending = conn.run_on_commit[-1][1] if conn.run_on_commit else None
    if not (isinstance(pending, _Pending) and conn.run_on_commit[-1][0] == set(conn.savepoint_ids)):
        pending = _Pending()
        conn.on_commit(pending)
    pending.groups.extend(groups)


def has_pending(alias: str) -> bool:
    """True when the open transaction on `alias` has written rows that are not committed yet."""
    conn = connections[alias]
    return conn.in_atomic_block and any(isinstance(entry[1], _Pending) for entry in conn.run_on_commit)
