"""`CacheInvalidator`: watches SQLAlchemy sessions and engines; invalidates after commit, never before.

Changed rows are collected when a session flushes (old and new values of the dependency columns,
from attribute history) and when it runs an ORM bulk `update()`/`delete()` (the affected values are
read with the statement's own WHERE clause, in its transaction, before it runs). They are kept per
transaction: a rolled-back transaction or savepoint drops its changes, a released savepoint hands them
to its parent, and only the outermost commit applies them. Core DML run on a watched engine cannot name
its rows, so it invalidates its table as a whole (`dep:<table>` and `dep:<table>!`).

Strategies, per registered model:
    immediate   applied in the commit (an AsyncSession's commit awaits it)
    delayed     coalesced for `delay` seconds after the first change, then applied once
    batch       collected and applied every `batch_interval` seconds or at `batch_size` pending tags
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from sqlalchemy import Table, event, inspect, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapper, ORMExecuteState, Session, sessionmaker
from sqlalchemy.sql import Delete, Insert, Update
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.util.concurrency import await_only, in_greenlet

from perfkit.cache.cache import Cache
from perfkit.cache.changes import Observer
from perfkit.cache.invalidations import STRATEGIES, Group, Invalidations, check_strategy
from perfkit.cache.orm.deps import column_tag, dependency_columns, table_tag, unknown_rows_tag
from perfkit.errors import ConfigurationError

__all__ = ["STRATEGIES", "CacheInvalidator"]

log = logging.getLogger("perfkit.cache")
_PENDING = "perfkit.pending"  # session.info: {transaction: [(model, strategy, tags)]}
_IN_ORM = "perfkit.in_orm"  # connection.info: set while the ORM itself executes, so Core hooks skip it


def _model_name(model: Any) -> str:
    return model if isinstance(model, str) else str(model.__name__)


class CacheInvalidator:
    """Invalidates the dependents of changed rows in one or more caches, after commit."""

    def __init__(
        self, *caches: Cache, delay: float = 0.1, batch_interval: float = 1.0, batch_size: int = 1000
    ):
        if not caches:
            raise ConfigurationError("caches", "CacheInvalidator needs at least one Cache")
        self.caches = caches
        self._own: dict[str, str] = {}  # model -> strategy for its own writes
        self._parents: dict[str, list[tuple[str, str]]] = defaultdict(list)  # child -> [(parent, strategy)]
        self._mappers: dict[str, Mapper[Any]] = {}
        self._applied = Invalidations(lambda: self.caches, delay, batch_interval, batch_size)
        self._key = f"{_PENDING}.{id(self):x}"  # several invalidators may watch one session
        self._listeners: list[tuple[Any, str, Any]] = []  # (target, event, fn), removed by close()

    def _listen(self, target: Any, name: str, fn: Any) -> None:
        event.listen(target, name, fn)
        self._listeners.append((target, name, fn))
        for cache in self.caches:
            cache.add_invalidator(self)

    # -- declaration ----------------------------------------------------------------------------------

    def register(self, model: Any, related: Iterable[Any] = (), strategy: str = "immediate") -> None:
        """Writes to `model` use `strategy`; a write to a `related` model also invalidates the dependents
        of its parent `model` row (found through the related model's foreign keys)."""
        check_strategy(strategy)
        name = _model_name(model)
        self._own[name] = strategy
        for child in related:
            self._parents[_model_name(child)].append((name, strategy))

    def on_change(self, observer: Observer) -> Callable[[], None]:
        """Call `observer(RowsChanged(model, tags))` once per changed model after each commit, once its
        dependents are invalidated (perfkit.cache.changes); returns a function that removes it."""
        return self._applied.observers.add(observer)

    def instrument(self, target: Any) -> None:
        """Watch a sessionmaker, async_sessionmaker, Session (sub)class or session, or an Engine."""
        if isinstance(target, AsyncEngine):
            target = target.sync_engine
        if isinstance(target, Engine):
            self._listen(target, "after_execute", self._on_core_execute)
            self._listen(target, "commit", self._on_core_commit)
            self._listen(target, "rollback", self._on_core_rollback)
            return
        if isinstance(target, async_sessionmaker):
            # its sessions' sync class is usually the global Session: watch a private subclass
            # installed into this factory only, not every Session in the process
            base = target.kw.get("sync_session_class", Session)
            target.kw["sync_session_class"] = target = type(f"Tracked{base.__name__}", (base,), {})
        if isinstance(target, AsyncSession):
            target = target.sync_session
        if isinstance(target, type) and issubclass(target, AsyncSession):
            target = target.sync_session_class
        if not isinstance(target, sessionmaker | Session) and not (
            isinstance(target, type) and issubclass(target, Session)
        ):
            raise ConfigurationError(
                "target", f"cannot watch {target!r}: give a sessionmaker, Session or Engine"
            )
        for name, handler in self._session_handlers():
            self._listen(target, name, handler)

    def instrument_engine_sessions(self, engine: Any) -> None:
        """Watch every Session bound to `engine` (an Engine or AsyncEngine), sync or async, however it
        was made (`Session(engine)`, any sessionmaker, a FastAPI dependency), and Core DML run on it.

        The listeners sit on SQLAlchemy's `Session` class and skip, at once, sessions bound elsewhere;
        `close()` removes them. What `perfkit.instrument(app, cache=..., engine=...)` wires."""
        sync_engine = engine.sync_engine if isinstance(engine, AsyncEngine) else engine
        if not isinstance(sync_engine, Engine):
            raise ConfigurationError("engine", f"{engine!r} is not a SQLAlchemy Engine or AsyncEngine")

        def bound(session: Session) -> bool:
            bind = session.bind
            if bind is None:
                try:
                    bind = session.get_bind()
                except Exception:  # unbound, or bound per mapper: not this engine's as a whole
                    return False
            return (bind.engine if isinstance(bind, Connection) else bind) is sync_engine

        for name, handler in self._session_handlers():
            self._listen(Session, name, _only_for(bound, handler, by_state=name == "do_orm_execute"))
        self.instrument(sync_engine)

    def _session_handlers(self) -> list[tuple[str, Any]]:
        return [
            ("after_flush", self._on_flush),
            ("before_flush", self._on_before_flush),
            ("after_flush_postexec", self._on_after_flush_postexec),
            ("do_orm_execute", self._on_orm_execute),
            ("after_soft_rollback", self._on_soft_rollback),
            ("after_transaction_end", self._on_transaction_end),
            ("after_commit", self._on_commit),
        ]

    # -- collecting changes ---------------------------------------------------------------------------

    def _strategy(self, model: str) -> str:
        return self._own.get(model, "immediate")

    def _mapper(self, session: Session, name: str, near: Mapper[Any]) -> Mapper[Any] | None:
        found = self._mappers.get(name)
        if found is None:
            for m in near.registry.mappers:
                if m.class_.__name__ == name:
                    self._mappers[name] = found = m
                    break
        return found

    def _record_pending(self, session: Session, groups: Iterable[Group]) -> None:
        """Keep changes with the chain of transactions they have been part of (see the event order below)."""
        txn = session.get_nested_transaction() or session.get_transaction()
        store: list[tuple[set[Any], Group]] = session.info.setdefault(self._key, [])
        store.extend(({txn}, g) for g in groups)

    # C901: one pass over a flush's new, dirty and deleted objects and their parents
    def _on_flush(self, session: Session, flush_context: Any) -> None:  # noqa: C901
        groups: dict[tuple[str, str], set[str]] = defaultdict(set)
        parents: dict[tuple[str, str], tuple[Mapper[Any], set[Any]]] = {}
        dirty = [o for o in session.dirty if session.is_modified(o, include_collections=False)]
        # by identity: models may define __eq__ without __hash__ (SQLModel, pydantic), so no set of objects
        new = {id(o) for o in session.new}
        for obj in [*session.new, *dirty, *session.deleted]:
            state = inspect(obj)
            mapper = state.mapper
            table = mapper.local_table
            if not isinstance(table, Table):
                continue
            name = mapper.class_.__name__
            tags = groups[name, self._strategy(name)]
            values: dict[str, list[Any] | None] = {}
            for each in mapper.tables:  # joined inheritance: the row spans the base tables too
                if not isinstance(each, Table):
                    continue
                tags.add(table_tag(each.name))
                each_values = _row_values(state, mapper, each, id(obj) in new)
                if each is table:
                    values = each_values
                for col, vals in each_values.items():
                    if vals is None:
                        tags.add(unknown_rows_tag(each.name))
                    else:
                        tags.update(column_tag(each.name, col, v) for v in vals)
            for parent_name, strategy in self._parents.get(name, ()):
                parent = self._mapper(session, parent_name, mapper)
                if parent is None:
                    continue
                ptable = parent.local_table
                if not isinstance(ptable, Table):
                    continue
                ptags = groups[parent_name, strategy]
                ptags.add(table_tag(ptable.name))
                for fk in table.foreign_keys:
                    if fk.column.table is not ptable:
                        continue
                    if values.get(fk.parent.name, ()) is None:  # the old parent is not known
                        ptags.add(unknown_rows_tag(ptable.name))
                        continue
                    for v in values.get(fk.parent.name) or ():
                        if v is None:
                            continue
                        ptags.add(column_tag(ptable.name, fk.column.name, v))
                        key = (parent_name, strategy)
                        parents.setdefault(key, (parent, set()))[1].add((fk.column.name, v))
        for (parent_name, strategy), (parent, refs) in parents.items():
            groups[parent_name, strategy].update(self._parent_row_tags(session, parent, refs))
        self._record_pending(session, [(m, s, t) for (m, s), t in groups.items() if t])

    def _parent_row_tags(self, session: Session, parent: Mapper[Any], refs: set[tuple[str, Any]]) -> set[str]:
        """Tags for the other dependency columns of parent rows (e.g. a ticket's organization_id)."""
        table = parent.local_table
        assert isinstance(table, Table)
        cols = sorted(dependency_columns(table))
        tags: set[str] = set()
        by_col: dict[str, list[Any]] = defaultdict(list)
        for col, v in refs:
            by_col[col].append(v)
        conn = session.connection()
        for ref_col, vals in by_col.items():
            rows = conn.execute(select(*[table.c[c] for c in cols]).where(table.c[ref_col].in_(vals))).all()
            for row in rows:
                tags.update(column_tag(table.name, c, v) for c, v in zip(cols, row, strict=True))
        return tags

    def _on_before_flush(self, session: Session, flush_context: Any, instances: Any) -> None:
        conn = session.connection()
        conn.info[_IN_ORM] = True
        session.info[self._key + ".conn"] = conn

    def _end_flush(self, session: Session) -> None:
        """Unmark the flush's connection; also on a failed flush (rollback), where postexec never runs."""
        conn = session.info.pop(self._key + ".conn", None)
        if conn is not None:
            conn.info.pop(_IN_ORM, None)

    def _on_after_flush_postexec(self, session: Session, flush_context: Any) -> None:
        self._end_flush(session)

    def _on_orm_execute(self, state: ORMExecuteState) -> Any:
        if not (state.is_update or state.is_delete or state.is_insert):
            return None
        stmt = state.statement
        table = getattr(stmt, "table", None)
        table = getattr(table, "local_table", table)
        if not isinstance(table, Table):
            return None
        mapper = state.bind_mapper
        name = mapper.class_.__name__ if mapper is not None else table.name
        tags = {table_tag(table.name)}
        cols = sorted(dependency_columns(table))
        where = getattr(stmt, "whereclause", None)
        raw_params = state.parameters
        params: dict[str, Any] = dict(raw_params) if isinstance(raw_params, Mapping) else {}
        if state.is_insert or where is None or not isinstance(raw_params, Mapping | None):
            tags.add(unknown_rows_tag(table.name))  # no WHERE, or one statement per parameter set
        else:  # read the affected rows' values with the statement's own WHERE (and parameters) first
            pre_read = select(*[table.c[c] for c in cols]).distinct().where(where)
            rows = state.session.execute(pre_read, params).all()
            for row in rows:
                tags.update(column_tag(table.name, c, v) for c, v in zip(cols, row, strict=True))
            assigned: dict[str, Any] = {
                str(getattr(target, "name", target)): value
                for target, value in (getattr(stmt, "_values", None) or {}).items()
            }
            assigned.update({k: BindParameter(k, v) for k, v in params.items() if k in cols})
            for col, value in assigned.items():
                if col in cols:
                    if isinstance(value, BindParameter) and value.value is not None:
                        tags.add(column_tag(table.name, col, value.value))
                    else:
                        tags.add(unknown_rows_tag(table.name))
        groups = [(name, self._strategy(name), tags)]
        for parent_name, strategy in self._parents.get(name, ()):
            parent = mapper and self._mapper(state.session, parent_name, mapper)
            if parent is not None:  # the parents' rows are not read for bulk statements
                ptable = str(getattr(parent.local_table, "name", ""))
                groups.append((parent_name, strategy, {table_tag(ptable), unknown_rows_tag(ptable)}))
        self._record_pending(state.session, groups)
        conn = state.session.connection()
        conn.info[_IN_ORM] = True
        try:
            return state.invoke_statement()
        finally:
            conn.info.pop(_IN_ORM, None)

    # -- transaction boundaries -----------------------------------------------------------------------

    # SQLAlchemy ends a savepoint (after_transaction_end) before it reports a rollback of it
    # (after_soft_rollback), so a savepoint's changes are passed up with the savepoint remembered in
    # their chain, and a rollback drops every change whose chain holds the rolled-back transaction.

    def _on_soft_rollback(self, session: Session, previous_transaction: Any) -> None:
        self._end_flush(session)
        store = session.info.get(self._key)
        if not store:
            return
        if previous_transaction.nested:
            store[:] = [(chain, g) for chain, g in store if previous_transaction not in chain]
        elif previous_transaction.parent is None:  # the outermost transaction
            store.clear()
        # else: a failed flush's own subtransaction; what it would have changed was never recorded

    def _on_transaction_end(self, session: Session, transaction: Any) -> None:
        store = session.info.get(self._key)
        if store and transaction.nested and transaction.parent is not None:
            for chain, _ in store:
                if transaction in chain:
                    chain.add(transaction.parent)

    def _on_commit(self, session: Session) -> None:
        store = session.info.pop(self._key, None)
        if store:
            self._dispatch([g for _, g in store])

    # -- Core DML on a watched engine -----------------------------------------------------------------

    def _on_core_execute(self, conn: Connection, clause: Any, *args: Any) -> None:
        if conn.info.get(_IN_ORM) or not isinstance(clause, Insert | Update | Delete):
            return
        table = clause.table
        if isinstance(table, Table):
            tags = {table_tag(table.name), unknown_rows_tag(table.name)}
            if conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
                self._dispatch(
                    [(table.name, "immediate", tags)]
                )  # already committed; no commit event follows
                return
            conn.info.setdefault(self._key, []).append((table.name, "immediate", tags))

    def _on_core_commit(self, conn: Connection) -> None:
        groups = conn.info.pop(self._key, None)
        if groups:
            # this event fires just before the database commits: apply now, and once more shortly
            # after, so that a reader who refilled from pre-commit data in between is corrected
            # (observers hear of it then: after the commit)
            self._dispatch(groups, notify=False)
            for model, _, tags in groups:
                self._applied.schedule("delayed", model, tags)

    def _on_core_rollback(self, conn: Connection) -> None:
        conn.info.pop(self._key, None)

    # -- applying -------------------------------------------------------------------------------------

    def _dispatch(self, groups: list[Group], notify: bool = True) -> None:
        now = self._applied.split(groups)
        if not now:
            return
        if in_greenlet():  # an AsyncSession commit: await the invalidation before commit() returns
            await_only(self._applied.apply_async(now, notify))
        else:
            self.apply_sync(now, notify)

    def apply_sync(self, groups: list[Group], notify: bool = True) -> None:
        self._applied.apply_sync(groups, notify)

    def stats(self) -> dict[str, dict[str, dict[str, float]]]:
        """{model: {strategy: {invalidations, keys_removed, seconds}}}."""
        return self._applied.stats()

    def flush(self) -> None:
        """Apply every delayed and batched invalidation now (at shutdown, or in tests)."""
        self._applied.flush()

    def close(self) -> None:
        """Apply what is pending, stop watching (every listener removed) and detach from the caches."""
        self._applied.close()
        listeners, self._listeners = self._listeners, []
        for target, name, fn in listeners:
            if event.contains(target, name, fn):
                event.remove(target, name, fn)
        for cache in self.caches:
            cache.remove_invalidator(self)


def _only_for(bound: Any, handler: Any, *, by_state: bool) -> Any:
    """`handler` run only for sessions `bound` accepts (`do_orm_execute` passes an ORMExecuteState)."""
    if by_state:

        def on_execute(state: ORMExecuteState) -> Any:
            return handler(state) if bound(state.session) else None

        return on_execute

    def on_session(session: Session, *args: Any) -> Any:
        return handler(session, *args) if bound(session) else None

    return on_session


def _row_values(state: Any, mapper: Mapper[Any], table: Table, new: bool) -> dict[str, list[Any] | None]:
    """Old and new values of the row's dependency columns; None where a value cannot be known."""
    out: dict[str, list[Any] | None] = {}
    for col in dependency_columns(table):
        column = table.c.get(col)
        if column is None:
            continue
        try:
            prop = mapper.get_property_by_column(column)
        except Exception:  # a column the mapper does not map: its value is unknown
            out[col] = None
            continue
        hist = state.attrs[prop.key].history
        if not new and hist.added and not hist.deleted:
            out[col] = None  # set without its old value loaded (expired): which rows had it is unknown
            continue
        vals = [*hist.deleted, *hist.added, *hist.unchanged]
        if not vals and prop.key in state.dict:
            vals = [state.dict[prop.key]]
        if vals:
            out[col] = list(dict.fromkeys(vals))
        elif new and column.server_default is None:
            out[col] = [None]  # a new row's unset column is NULL
        else:
            out[col] = None  # not loaded, or filled in by the server
    return out
