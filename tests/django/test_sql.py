"""Django SQL instrumentation: per-request counts, slow statements with EXPLAIN once per shape,
repeated statements, bounded memory, on the in-memory SQLite and the real PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connections, transaction

from perfkit.db import track
from perfkit.django import db as django_db
from perfkit.errors import ConfigurationError
from perfkit.metrics import Collector, current_request
from tests.conftest import require_postgres
from tests.django import sql_helpers
from tests.django.sql_helpers import Configure, databases
from tests.django.tickets.models import Organization, Ticket

alias = sql_helpers.alias  # the fixtures, used by name
configure = sql_helpers.configure


def _tickets(alias: str, n: int = 3) -> Organization:
    org = Organization.objects.using(alias).create(name="acme")
    for i in range(n):
        Ticket.objects.using(alias).create(organization=org, title=f"t{i}", priority=i)
    return org


def _operations(collector: Collector) -> dict[tuple[str, ...], int]:
    family = collector.histogram("db_query_duration_seconds", ("operation",))
    return {labels: family.count(labels) for labels in family.series}


@databases()
def test_queries_count_into_the_open_request(alias: str, configure: Configure) -> None:
    """Each statement adds one to the request's db_count and its time to db_time, and one
    observation to db_query_duration_seconds{operation}."""
    collector = configure()
    _tickets(alias, 2)
    with track("/tickets") as stats:
        assert Ticket.objects.using(alias).count() == 2
        assert [o.name for o in Organization.objects.using(alias).all()] == ["acme"]
        Ticket.objects.using(alias).filter(priority=0).update(status="closed")
    assert stats.db_count == 3
    assert stats.db_time > 0
    ops = _operations(collector)
    assert ops[("SELECT",)] == 2 and ops[("UPDATE",)] == 1 and ops[("INSERT",)] == 3


@databases()
def test_outside_a_request_nothing_is_counted_per_request(alias: str, configure: Configure) -> None:
    """With no request open the statement runs and is observed in the histogram only."""
    collector = configure()
    assert current_request() is None
    assert Ticket.objects.using(alias).count() == 0
    assert _operations(collector) == {("SELECT",): 1}


@databases(transaction=True)
def test_an_aliased_connection_opened_in_a_thread_is_hooked(alias: str, configure: Configure) -> None:
    """A connection Django opens in another thread (its own DatabaseWrapper) gets the hook too."""
    import threading

    collector = configure()
    counted: list[int] = []

    def work() -> None:
        with track() as stats:
            Ticket.objects.using(alias).count()
        counted.append(stats.db_count)
        connections[alias].close()

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(10)
    assert counted == [1]
    assert _operations(collector)[("SELECT",)] == 1


@databases()
def test_slow_statements_are_explained_once_per_shape(alias: str, configure: Configure) -> None:
    """Every slow statement is a finding; its shape is EXPLAINed once (a query_plan finding), and a
    filtered full scan yields an index suggestion naming the table and column."""
    collector = configure(slow_query=1e-9)
    _tickets(alias, 3)
    with track("/slow"):
        for status in ("open", "closed", "pending"):
            list(Ticket.objects.using(alias).filter(status=status))
    selects = [f for f in collector.findings("slow_query") if "tickets_ticket" in f["statement"]]
    selects = [f for f in selects if f["statement"].startswith("SELECT")]
    assert len(selects) == 3 and {f["route"] for f in selects} == {"/slow"}
    assert all(f["parameters"] == ["<str>"] for f in selects)  # values redacted
    plans = [p for p in collector.findings("query_plan") if p["shape_id"] == selects[0]["shape_id"]]
    assert len(plans) == 1 and plans[0]["explain"]
    assert "explain" in selects[0] and "explain" not in selects[1]
    suggestions = [s for s in collector.findings("index_suggestion") if s["table"] == "tickets_ticket"]
    [status] = [s for s in suggestions if s["columns"] == ["status"]]
    assert status["model"] == "tickets.Ticket"
    assert status["django"] == 'models.Index(fields=["status"]) in Ticket.Meta.indexes'
    assert status["sql"].startswith("CREATE INDEX")
    assert collector.counter("db_slow_queries_total").value() >= 3


@pytest.mark.postgres
@pytest.mark.django_db(databases=["pg"])
def test_explain_inside_a_postgres_transaction_leaves_it_usable(
    alias: str, configure: Configure, caplog: pytest.LogCaptureFixture
) -> None:
    """EXPLAIN runs in a savepoint inside an atomic block: the transaction goes on, and a failing
    EXPLAIN (SELECT ... INTO an existing table) does not abort it."""
    collector = configure(slow_query=1e-9)
    caplog.set_level("INFO", logger="perfkit.db")
    with transaction.atomic(using="pg"), connections["pg"].cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE perfkit_into (x int)")
        cursor.execute("SELECT %s AS x INTO TEMP perfkit_twice", [1])  # EXPLAIN of it: already exists
        cursor.execute("SELECT count(*) FROM perfkit_twice")
        assert cursor.fetchone() == (1,)
        Organization.objects.using("pg").create(name="still here")
    assert Organization.objects.using("pg").filter(name="still here").exists()
    assert any("perfkit_twice" in f["statement"] for f in collector.findings("slow_query"))
    assert any("EXPLAIN failed" in r.message and "perfkit_twice" in r.message for r in caplog.records)


test_explain_inside_a_postgres_transaction_leaves_it_usable = pytest.mark.parametrize(
    "alias", ["pg"], indirect=True
)(test_explain_inside_a_postgres_transaction_leaves_it_usable)


@databases()
def test_repeated_identical_statements_are_reported(alias: str, configure: Configure) -> None:
    """The same statement with the same parameters three times in one request is one finding."""
    collector = configure(repeat_threshold=3)
    org = _tickets(alias, 1)
    with track("/repeat"):
        for _ in range(4):
            Organization.objects.using(alias).get(pk=org.pk)
        Organization.objects.using(alias).filter(pk=org.pk + 1).exists()  # other parameters
    found = collector.findings("repeated_query")
    assert len(found) == 1
    assert found[0]["count"] == 3 and found[0]["route"] == "/repeat"
    assert "tickets_organization" in found[0]["statement"]


@databases()
def test_remembered_shapes_stay_capped(alias: str, configure: Configure) -> None:
    """Many distinct slow shapes: the EXPLAIN-once memory never holds more than max_shapes."""
    configure(slow_query=1e-9, max_shapes=5)
    hook = django_db.hook_for(alias)
    assert hook is not None
    with connections[alias].cursor() as cursor:
        for i in range(40):
            cursor.execute(f"SELECT 1 AS c{i}")
            assert hook.shapes_explained <= 5
    assert hook.shapes_explained == 5


def test_per_shape_series_fold_into_overflow(configure: Configure, db: Any) -> None:
    """The per-shape slow histogram is capped by the collector's max_series (extra shapes fold into
    one overflow series): memory does not grow per query."""
    configure(slow_query=1e-9, explain=False)
    small = Collector(max_series=10)
    django_db.install(collector=small)
    with connections["default"].cursor() as cursor:
        for i in range(50):
            cursor.execute(f"SELECT {i} AS n_{i}")
    family = small.histogram("db_slow_query_duration_seconds", ("shape", "route"))
    assert len(family.series) == 11  # the cap, plus the one overflow series
    assert ("__overflow__", "__overflow__") in family.series


@pytest.mark.django_db(databases=["default", "pg"])
def test_only_the_configured_aliases_are_instrumented(configure: Configure, settings: Any) -> None:
    """PERFKIT['databases'] = ['default']: statements on `pg` are not counted."""
    require_postgres()
    configure()
    settings.PERFKIT = {**settings.PERFKIT, "databases": ["default"]}  # reconfigures the hooks
    with track() as stats:
        Ticket.objects.using("default").count()
        Ticket.objects.using("pg").count()
    assert stats.db_count == 1


def test_an_unknown_alias_is_refused(settings: Any) -> None:
    """An alias in PERFKIT['databases'] that DATABASES has not got is a ConfigurationError naming it."""
    with pytest.raises(ConfigurationError) as err:
        settings.PERFKIT = {**settings.PERFKIT, "databases": ["nope"]}
    assert err.value.setting == "PERFKIT['databases']" and "nope" in str(err.value)


@pytest.mark.postgres
@pytest.mark.django_db(databases=["pg"], transaction=True)
def test_a_connection_opened_inside_a_users_execute_wrapper_block(configure: Configure) -> None:
    """The hook goes first in execute_wrappers: when the connection opens inside the user's
    `connection.execute_wrapper(w)` block, leaving the block removes `w`, not perfkit's hook."""
    require_postgres()
    configure()
    connection = connections["pg"]
    seen: list[str] = []

    def mine(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        seen.append(sql)
        return execute(sql, params, many, context)

    connection.close()
    connection.execute_wrappers.clear()  # as a new thread's DatabaseWrapper starts
    with connection.execute_wrapper(mine), connection.cursor() as cursor:
        cursor.execute("SELECT 1")  # opens the connection: connection_created adds the hook
    assert seen == ["SELECT 1"]
    assert connection.execute_wrappers == [django_db.hook_for("pg")]
    with track() as stats:
        Ticket.objects.using("pg").count()
    assert stats.db_count == 1 and len(seen) == 1


@pytest.mark.django_db
def test_install_hooks_the_connections_already_open(configure: Configure) -> None:
    """A connection that was open before `install()` ran (no connection_created to come) is hooked."""
    configure()
    connection = connections["default"]
    connection.ensure_connection()
    connection.execute_wrappers.clear()
    django_db.install()
    assert connection.execute_wrappers == [django_db.hook_for("default")]
    with track() as stats:
        Ticket.objects.count()
    assert stats.db_count == 1


@databases()
def test_an_order_by_limit_suggestion_names_the_model_index(alias: str, configure: Configure) -> None:
    """A filtered `ORDER BY -priority LIMIT` over a full scan suggests the index in Django terms, the
    filter's column first and the sort key descending."""
    collector = configure(slow_query=1e-9)
    _tickets(alias, 3)
    list(Ticket.objects.using(alias).filter(status="open").order_by("-priority")[:2])
    found = [s for s in collector.findings("index_suggestion") if s.get("reason") == "order_by"]
    assert [s["django"] for s in found] == [
        'models.Index(fields=["status", "-priority"]) in Ticket.Meta.indexes'
    ], collector.findings("index_suggestion")


@pytest.mark.django_db
def test_no_databases_switches_the_instrumentation_off(configure: Configure, settings: Any) -> None:
    """PERFKIT['databases'] = []: no statement is counted and no lazy load reported."""
    collector = configure(nplusone_threshold=1)
    settings.PERFKIT = {**settings.PERFKIT, "databases": []}
    org = Organization.objects.create(name="acme")
    Ticket.objects.create(organization=org, title="t")
    with track() as stats:
        assert [t.organization.name for t in Ticket.objects.all()] == ["acme"]
    assert stats.db_count == 0 and stats.lazy_loads == {}
    assert collector.findings("n_plus_one") == [] and _operations(collector) == {}
