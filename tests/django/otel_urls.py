"""Views and a task of tests/django/test_otel.py: SQL, the perfkit cache, a job, a real-time publish,
an N+1, a failure; perfkit's monitor views under /perf/."""

from __future__ import annotations

from typing import Any

from django.core.cache import caches
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.urls import include, path

from perfkit.django.jobs import task
from perfkit.realtime import Hub
from tests.django.tickets.models import Organization, Ticket

QUEUE = "dj-otel"
HUB: list[Hub] = []  # the test's hub


@task(queue=QUEUE)
def probe(ctx: Any) -> int:
    """One SQL statement in the worker (no table: nothing the test's open transaction locks)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        return int(cursor.fetchone()[0])


def orgs(request: HttpRequest, pk: int) -> JsonResponse:
    """Two statements."""
    Organization.objects.create(name=f"org{pk}")
    return JsonResponse({"count": Organization.objects.count()})


async def aorgs(request: HttpRequest, pk: int) -> JsonResponse:
    """Two statements from an async view (the ORM in sync_to_async's thread)."""
    await Organization.objects.acreate(name=f"org{pk}")
    return JsonResponse({"count": await Organization.objects.acount()})


def cached(request: HttpRequest) -> HttpResponse:
    """A set and a get on the perfkit cache behind CACHES['default']."""
    caches["default"].set("otel-key", "v", 30)
    return HttpResponse(caches["default"].get("otel-key"))


def enqueue(request: HttpRequest) -> JsonResponse:
    """Queues `probe` now."""
    return JsonResponse({"job": probe.enqueue_sync().id})


async def aenqueue(request: HttpRequest) -> JsonResponse:
    """Queues `probe` from an async view."""
    return JsonResponse({"job": (await probe.enqueue()).id})


async def publish(request: HttpRequest) -> JsonResponse:
    """Publishes on the test hub."""
    position = await HUB[0].publish("room:1", {"text": "hi"})
    return JsonResponse({"offset": position.offset})


def naive(request: HttpRequest) -> HttpResponse:
    """The N+1: one query for the tickets, one per ticket for its organization."""
    return HttpResponse(",".join(t.organization.name for t in Ticket.objects.all()))


def stream(request: HttpRequest) -> StreamingHttpResponse:
    """A streamed response of three chunks."""
    return StreamingHttpResponse(iter([b"a", b"b", b"c"]))


def fail(request: HttpRequest) -> HttpResponse:
    """Raises: Django answers 500."""
    raise LookupError("no such thing")


urlpatterns = [
    path("orgs/<int:pk>/", orgs, name="orgs"),
    path("async/orgs/<int:pk>/", aorgs, name="aorgs"),
    path("cached/", cached, name="cached"),
    path("enqueue/", enqueue, name="enqueue"),
    path("async/enqueue/", aenqueue, name="aenqueue"),
    path("publish/", publish, name="publish"),
    path("naive/", naive, name="naive"),
    path("fail/", fail, name="fail"),
    path("stream/", stream, name="stream"),
    path("perf/", include("perfkit.django.urls")),
]
