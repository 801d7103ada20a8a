"""SQL instrumentation for Django: perfkit's query hook on every configured database.

`install()` (run once by `PerfkitConfig.ready()`) puts an `ExecuteHook` in front of the
`execute_wrappers` of each configured alias (`PERFKIT["databases"]`, else every `DATABASES` alias).
Django keeps one `DatabaseWrapper` per thread and async context, so the hook is added when a connection
opens (the `connection_created` signal) and to the wrappers already open. Per statement it does what
the SQLAlchemy hooks do (perfkit.db.observe): count and time into the request's `RequestStats`
(`perfkit.metrics.current_request()`; nothing per request outside one), `db_query_duration_seconds`,
repeated identical statements, slow statements with EXPLAIN once per shape and index suggestions. ORM
calls of async views run in a thread through `sync_to_async`, which copies the context: the statements
reach the awaiting request's stats. N+1 detection for lazy relation access is `db_nplusone.py`.

Changing `settings.PERFKIT` (`override_settings`) reconfigures the hooks; `install(collector=...)` points
them at another collector (tests).
"""

from __future__ import annotations

from time import perf_counter
from typing import Any

from perfkit.db.config import DbConfig
from perfkit.db.explain import Plan
from perfkit.db.observe import StatementObserver
from perfkit.errors import ConfigurationError
from perfkit.metrics import Collector, default_collector

__all__ = ["ExecuteHook", "attach", "hook_for", "hooks", "install", "model_index"]

_hooks: dict[str, ExecuteHook] = {}
_collector: Collector | None = None


class ExecuteHook(StatementObserver):
    """perfkit's `execute_wrapper` for one database alias (Django's wrapper signature)."""

    def __init__(self, alias: str, vendor: str, config: DbConfig, collector: Collector) -> None:
        super().__init__(vendor, config, collector)
        self.alias = alias
        self.active = True  # False once PERFKIT['databases'] no longer names the alias

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: dict[str, Any]) -> Any:
        if not self.active:
            return execute(sql, params, many, context)
        start = perf_counter()
        result = execute(sql, params, many, context)
        elapsed = perf_counter() - start
        if self.observe(sql, params, many, elapsed):
            self.slow_query(context["connection"], sql, params, many, elapsed)
        return result

    def explain(self, connection: Any, statement: str, parameters: Any) -> Plan | None:
        """EXPLAIN on a backend cursor of the Django `connection` (`create_cursor()`: it takes Django's
        `%s` placeholders and does not pass through the execute wrappers again), in a savepoint inside
        a PostgreSQL transaction (`StatementObserver.explain`)."""
        return super().explain(_Cursors(connection), statement, parameters)

    def index_suggestion(self, suggestion: dict[str, Any]) -> dict[str, Any]:
        """Adds the model (`"model": "tickets.Ticket"`) and the index as the model declares it
        (`"django": 'models.Index(fields=["status"]) in Ticket.Meta.indexes'`) when the table and
        columns are a model's."""
        return {**suggestion, **model_index(suggestion)}


def model_index(suggestion: dict[str, Any]) -> dict[str, str]:
    """`model` and `django` for an index suggestion on a model's table, or {} (not a model's)."""
    from django.apps import apps

    table, columns = suggestion.get("table"), list(suggestion.get("columns", ()))
    model = next((m for m in apps.get_models() if m._meta.db_table == table), None)
    if model is None or not columns:
        return {}
    names = {f.column: f.name for f in model._meta.concrete_fields}
    if not all(c in names for c in columns):
        return {}
    descending = {t.split()[0] for t in suggestion.get("order_by", ()) if " DESC" in t.upper()}
    fields = ", ".join(f'"{"-" if c in descending else ""}{names[c]}"' for c in columns)
    return {
        "model": model._meta.label,
        "django": f"models.Index(fields=[{fields}]) in {model.__name__}.Meta.indexes",
    }


class _Cursors:
    """What `run_explain` needs of a connection: `.cursor()`, here the backend's own cursor."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    def cursor(self) -> Any:
        return self.connection.create_cursor()


def hook_for(alias: str) -> ExecuteHook | None:
    """The hook of a database alias (None if that alias is not instrumented)."""
    hook = _hooks.get(alias)
    return hook if hook is not None and hook.active else None


def hooks() -> list[ExecuteHook]:
    """The hooks of the instrumented aliases."""
    return [hook for hook in _hooks.values() if hook.active]


def _aliases(wanted: tuple[str, ...] | None) -> tuple[str, ...]:
    from django.db import connections

    known = tuple(connections.settings)
    if wanted is None:
        return known
    for alias in wanted:
        if alias not in known:
            raise ConfigurationError(
                "PERFKIT['databases']", f"{alias!r} is not a DATABASES alias; known: {', '.join(known)}"
            )
    return wanted


def install(collector: Collector | None = None) -> None:
    """Instrument the configured databases from `settings.PERFKIT` (again: reconfigure them)."""
    global _collector
    from django.core.signals import setting_changed
    from django.db import connections
    from django.db.backends.signals import connection_created

    from perfkit.django import conf, db_nplusone, otel

    settings = conf.get_settings()
    aliases = _aliases(settings.databases)
    _collector = collector or _collector or default_collector()
    for alias, made in _hooks.items():
        made.active = alias in aliases  # off: it stays in the wrappers' lists, passing statements through
    for alias in aliases:
        vendor = connections[alias].vendor
        hook = _hooks.get(alias)
        if hook is None:
            _hooks[alias] = ExecuteHook(alias, vendor, settings.db, _collector)
        else:  # the wrappers of every thread hold this object: reconfigure it in place
            ExecuteHook.__init__(hook, alias, vendor, settings.db, _collector)
    connection_created.connect(_on_connection_created, dispatch_uid="perfkit.django.db")
    setting_changed.connect(_on_setting_changed, dispatch_uid="perfkit.django.db")
    for connection in connections.all(initialized_only=True):
        attach(connection)
    otel.project.watch_statements(hooks())  # (re-made hooks have no listeners)
    db_nplusone.install(settings.db, _collector, enabled=bool(aliases))  # databases=[]: all off


def attach(connection: Any) -> None:
    """Put the alias's hook first in `connection.execute_wrappers` (once). First, because Django's
    `connection.execute_wrapper()` context manager pops the last entry when its block ends: a hook
    appended inside such a block (the connection opened there) would be the one popped."""
    hook = hook_for(connection.alias)
    if hook is None or hook in connection.execute_wrappers:
        return
    connection.execute_wrappers.insert(0, hook)


def _on_connection_created(sender: Any, connection: Any, **_: Any) -> None:
    attach(connection)


def _on_setting_changed(*, setting: str, **_: Any) -> None:
    if setting == "PERFKIT":
        from perfkit.django import conf

        conf.reset()  # whichever receiver runs first, read the new value
        install()
