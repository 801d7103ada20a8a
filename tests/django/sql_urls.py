"""Views and a request-opening middleware for tests/django/test_sql*.py (until perfkit's middleware
opens the request itself, `OpenRequest` does what it will: `start_request` / `end_request`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path

from perfkit.metrics import end_request, start_request
from tests.django.tickets.models import Organization, Ticket


class OpenRequest:
    """Opens a RequestStats around the view (sync and async) and returns its db count as a header."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if iscoroutinefunction(self):
            return self._async(request)
        stats, token = start_request(request.path)
        try:
            response = self.get_response(request)
        finally:
            end_request(token)
        response["X-DB-Count"] = str(stats.db_count)
        return response

    async def _async(self, request: HttpRequest) -> HttpResponse:
        stats, token = start_request(request.path)
        try:
            response = await self.get_response(request)
        finally:
            end_request(token)
        response["X-DB-Count"] = str(stats.db_count)
        return response  # type: ignore[no-any-return]


def tickets(request: HttpRequest) -> HttpResponse:
    """Three queries."""
    Ticket.objects.count()
    names = [o.name for o in Organization.objects.all()]
    Ticket.objects.filter(status="open").exists()
    return HttpResponse(",".join(names))


def naive(request: HttpRequest) -> HttpResponse:
    """The N+1: one query for the tickets, one per ticket for its organization."""
    return HttpResponse(",".join(t.organization.name for t in Ticket.objects.all()))


async def async_tickets(request: HttpRequest) -> HttpResponse:
    """Three queries from an async view (the ORM runs them in a thread via sync_to_async)."""
    await Ticket.objects.acount()
    names = [o.name async for o in Organization.objects.all()]
    await Ticket.objects.filter(status="open").aexists()
    return HttpResponse(",".join(names))


async def async_naive(request: HttpRequest) -> HttpResponse:
    """The N+1 from an async view: the lazy loads run in sync_to_async's thread."""
    from asgiref.sync import sync_to_async

    def names() -> list[str]:
        return [t.organization.name for t in Ticket.objects.all()]

    return HttpResponse(",".join(await sync_to_async(names)()))


def findings(request: HttpRequest) -> JsonResponse:
    """The process's N+1 findings (what the monitor's report reads), for the server tests."""
    from perfkit.metrics import default_collector

    return JsonResponse({"n_plus_one": default_collector().findings("n_plus_one")})


urlpatterns = [
    path("async-naive/", async_naive, name="async-naive"),
    path("findings/", findings, name="findings"),
    path("tickets/", tickets, name="tickets"),
    path("naive/", naive, name="naive"),
    path("async/", async_tickets, name="async-tickets"),
]


class ToPostgres:
    """A database router sending every model to `pg` (the async view test's PostgreSQL run)."""

    def db_for_read(self, model: Any, **hints: Any) -> str:
        return "pg"

    def db_for_write(self, model: Any, **hints: Any) -> str:
        return "pg"


class ToDefault(ToPostgres):
    """Every model to `default`."""

    def db_for_read(self, model: Any, **hints: Any) -> str:
        return "default"

    def db_for_write(self, model: Any, **hints: Any) -> str:
        return "default"
