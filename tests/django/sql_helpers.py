"""Fixtures shared by tests/django/test_sql*.py: a fresh collector and PERFKIT['db'] per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from perfkit.django import db as django_db
from perfkit.metrics import Collector, default_collector
from tests.conftest import require_postgres


def databases(*, transaction: bool = False) -> Any:
    """Parametrize a test over the two databases every behaviour runs on, the in-memory SQLite
    `default` and the real PostgreSQL `pg`, each with its own `django_db` mark."""
    return pytest.mark.parametrize("alias", indirect=True, argvalues=[
        pytest.param("default", id="sqlite",
                     marks=pytest.mark.django_db(databases=["default"], transaction=transaction)),
        pytest.param("pg", id="postgres",
                     marks=[pytest.mark.postgres,
                            pytest.mark.django_db(databases=["pg"], transaction=transaction)]),
    ])  # fmt: skip


Configure = Callable[..., Collector]


@pytest.fixture
def configure(settings: Any) -> Iterator[Configure]:
    """`configure(**db_settings)`: PERFKIT['db'] set to them, the hooks pointed at a new Collector."""

    def apply(**db: Any) -> Collector:
        collector = Collector()
        settings.PERFKIT = {**settings.PERFKIT, "db": db}  # reconfigures the hooks (setting_changed)
        django_db.install(collector=collector)
        return collector

    yield apply
    django_db.install(collector=default_collector())  # the settings fixture then restores PERFKIT


@pytest.fixture
def alias(request: pytest.FixtureRequest) -> str:
    """The parametrized alias, after checking that its server is there (PostgreSQL: skip loudly, or
    fail under CI)."""
    name: str = request.param
    if name == "pg":
        require_postgres()
    return name
