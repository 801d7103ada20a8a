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
        _observe_cache("default")


def _observe_cache(alias: str) -> None:
    """Count the alias's cache operations in the process's metrics (`perfkit_cache_operations_total`,
    Server-Timing's `cache`), as `perfkit.instrument(cache=...)` does for the FastAPI app: perfkit.django
    does not attach the backend's cache to the collector (yet), and the demo's hit ratio is read there."""
    from django.core.cache import caches

    from perfkit.metrics import cache_observer, default_collector

    backend = caches[alias]
    cache = getattr(backend, "perfkit_cache", None)
    if cache is not None:
        cache.add_observer(cache_observer(default_collector()))
