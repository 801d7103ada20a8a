"""The demo's Django app (label `demo`): its models map the seeder's tables; `ready()` gives the
relationship map (a comment write reaches its ticket's cached values) and has the cache report to the
monitor."""

from __future__ import annotations

from django.apps import AppConfig


class DemoConfig(AppConfig):
    name = "perfkit.demo.django_app"
    label = "demo"
    verbose_name = "perfkit demo: support tickets"
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        from perfkit.demo.django_app.models import Ticket, TicketComment
        from perfkit.django import register

        register(Ticket, related=[TicketComment], strategy="immediate")
