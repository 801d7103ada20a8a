"""Views that enqueue jobs as a project's views would (the job tests set ROOT_URLCONF to this module)."""

from __future__ import annotations

from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.urls import path

from tests.django.jobs_app.tasks import ticket_title, ticket_title_async
from tests.django.tickets.models import Organization, Ticket


class Rollback(Exception):
    pass


def create_ticket(request: HttpRequest) -> JsonResponse:
    """Writes a ticket and queues the job that reads it on commit; `?fail=1` rolls the transaction back."""
    using = request.GET.get("db", "default")
    task = ticket_title_async if request.GET.get("async") else ticket_title
    try:
        with transaction.atomic(using=using):
            org = Organization.objects.using(using).create(name="acme")
            ticket = Ticket.objects.using(using).create(organization=org, title=request.GET["title"])
            task.enqueue_on_commit(ticket.pk, using=using)
            if request.GET.get("fail"):
                raise Rollback
    except Rollback:
        return JsonResponse({"rolled_back": True}, status=409)
    return JsonResponse({"ticket": ticket.pk})


def enqueue_sync(request: HttpRequest) -> JsonResponse:
    """A sync view (WSGI): queues a job now, with no event loop of its own."""
    job = ticket_title.enqueue_sync(int(request.GET["ticket"]))
    return JsonResponse({"job": job.id, "status": str(job.status)})


async def enqueue_async(request: HttpRequest) -> JsonResponse:
    """An async view: awaits the enqueue on whatever loop Django runs it on."""
    job = await ticket_title.enqueue(int(request.GET["ticket"]))
    return JsonResponse({"job": job.id, "status": str(job.status)})


urlpatterns = [
    path("create/", create_ticket),
    path("enqueue-sync/", enqueue_sync),
    path("enqueue-async/", enqueue_async),
]
