"""Django SQL instrumentation through real views: a sync view under Django's test client (WSGI
handler) and an async view under the ASGI handler, whose ORM calls run in sync_to_async threads."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connections

from perfkit.metrics import current_request
from tests.django import sql_helpers
from tests.django.sql_helpers import Configure, databases
from tests.django.tickets.models import Organization, Ticket

alias = sql_helpers.alias  # the fixtures, used by name
configure = sql_helpers.configure

pytestmark = pytest.mark.urls("tests.django.sql_urls")


@pytest.fixture
def opened(settings: Any) -> None:
    """The test middleware that opens a RequestStats per request (what PerfkitMiddleware does)."""
    settings.MIDDLEWARE = ["tests.django.sql_urls.OpenRequest"]


def _data(alias: str) -> None:
    org = Organization.objects.using(alias).create(name="acme")
    for i in range(4):
        Ticket.objects.using(alias).create(organization=org, title=f"t{i}")


@pytest.mark.django_db
def test_a_sync_view_counts_its_queries(client: Any, configure: Configure, opened: None) -> None:
    """The view's three statements are the request's db count; nothing leaks outside the request."""
    configure()
    _data("default")
    response = client.get("/tickets/")
    assert response.status_code == 200 and response.content == b"acme"
    assert response["X-DB-Count"] == "3"
    assert current_request() is None


@pytest.mark.django_db
def test_a_naive_view_reports_its_n_plus_one_with_the_route(
    client: Any, configure: Configure, opened: None
) -> None:
    """The N+1 view's lazy organization loads are one finding for that request's route."""
    collector = configure(nplusone_threshold=3)
    _data("default")
    response = client.get("/naive/")
    assert response["X-DB-Count"] == "5"  # 1 + one per ticket
    [finding] = collector.findings("n_plus_one")
    assert finding["route"] == "/naive/" and finding["fix"] == 'select_related("organization")'


@databases(transaction=True)
async def test_an_async_view_counts_its_queries(
    alias: str, async_client: Any, configure: Configure, opened: None, settings: Any
) -> None:
    """The async view's awaits (acount, async for, aexists) run in a thread; each statement still
    reaches the request's stats."""
    from asgiref.sync import sync_to_async

    configure()
    settings.DATABASE_ROUTERS = [f"tests.django.sql_urls.{'ToPostgres' if alias == 'pg' else 'ToDefault'}"]
    try:
        await sync_to_async(_data)(alias)
        response = await async_client.get("/async/")
        assert response.status_code == 200 and response.content == b"acme"
        assert response["X-DB-Count"] == "3"
    finally:  # the connections the ORM opened in sync_to_async's thread
        await sync_to_async(connections.close_all)()
