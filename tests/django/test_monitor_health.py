"""Readiness when a database is down (outside pytest-django's test databases: no `django_db` mark, the
blocker lifted for the probe's own connection)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.django.web_support import configure

pytestmark = [pytest.mark.urls("tests.django.web_urls")]


@pytest.fixture
def perfkit(settings: Any) -> Any:
    """Django's settings with perfkit's middleware installed (`web_support.configure`)."""
    return configure(settings)


def test_readiness_fails_when_a_database_is_down(
    client: Any, perfkit: Any, monkeypatch: Any, django_db_blocker: Any
) -> None:
    """A database that cannot be opened fails readiness (503), naming its alias and the error."""
    from django.db import connections

    down = {"ENGINE": "django.db.backends.sqlite3", "NAME": "/nonexistent/perfkit/db.sqlite3"}
    full = connections.configure_settings({"default": dict(down), "down": down})["down"]
    monkeypatch.setitem(connections.settings, "down", full)
    perfkit.PERFKIT = {"monitor": {"token": "test-token"}, "databases": ["down"]}
    with django_db_blocker.unblock():
        response = client.get("/perf/health/ready", headers={"Authorization": "Bearer test-token"})
    assert response.status_code == 503
    check = response.json()["checks"]["database:down"]
    assert check["status"] == "fail" and "OperationalError" in check["message"]
