"""Views and the hub of tests/django/realtime_asgi.py (the Django ASGI project tests/django/
test_realtime_asgi.py serves with uvicorn): log in and out, who am I, and a view that creates a ticket
in a transaction and publishes it on `org:<id>` after the commit (`?fail=1` rolls it back), and an
async view that publishes at once."""

from __future__ import annotations

import os
from typing import Any

from django.contrib.auth import authenticate, login, logout
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import include, path

from perfkit.django.realtime import publish_on_commit
from perfkit.realtime import Hub

hub = Hub(os.environ.get("RT_URL", "memory://"), batch_window=0)


def may_see(user: Any, channel: str) -> bool:
    """A user hears their own `user:<id>` and any `org:<id>`; nothing else."""
    return channel == f"user:{user.pk}" or channel.startswith("org:")


def login_view(request: HttpRequest) -> HttpResponse:
    user = authenticate(request, username=request.POST["username"], password=request.POST["password"])
    if user is None:
        return HttpResponse(status=403)
    login(request, user)
    return JsonResponse({"id": user.pk})


def logout_view(request: HttpRequest) -> HttpResponse:
    logout(request)
    return HttpResponse(status=204)


def whoami(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"user": request.user.get_username() if request.user.is_authenticated else None})


class RolledBack(Exception):
    pass


def create_ticket(request: HttpRequest) -> HttpResponse:
    from tests.django.tickets.models import Organization, Ticket

    org = Organization.objects.get(name="acme")
    try:
        with transaction.atomic():
            ticket = Ticket.objects.create(organization=org, title=request.POST["title"])
            publish_on_commit(hub, f"org:{org.pk}", {"ticket": ticket.pk, "title": ticket.title})
            if request.POST.get("fail"):
                raise RolledBack
    except RolledBack:
        return JsonResponse({"rolled_back": True}, status=409)
    return JsonResponse({"ticket": ticket.pk, "org": org.pk})


async def announce(request: HttpRequest) -> HttpResponse:
    """An async view: no transaction can be open here, so the message goes at once."""
    publish_on_commit(hub, "org:1", {"announce": request.GET.get("text", "")})
    return HttpResponse(status=204)


urlpatterns = [
    path("announce/", announce),
    path("login/", login_view),
    path("logout/", logout_view),
    path("whoami/", whoami),
    path("tickets/", create_ticket),
    path("perf/", include("perfkit.django.urls")),  # the monitor (off unless RT_MONITOR is set)
]
