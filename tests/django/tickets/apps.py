from __future__ import annotations

from django.apps import AppConfig


class TicketsConfig(AppConfig):
    name = "tests.django.tickets"
    label = "tickets"
