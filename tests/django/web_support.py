"""Fixtures and helpers shared by the middleware, monitor and ASGI tests."""

from __future__ import annotations

from typing import Any

from perfkit.metrics import default_collector

MIDDLEWARE = [
    "perfkit.django.PerfkitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
TEST_CACHE = {"BACKEND": "tests.django.web_cache.PerfkitTestCache", "LOCATION": "memory://"}


def configure(settings: Any) -> Any:
    """The test project with perfkit's middleware (first), sessions and auth, and a monitor token; the
    test then assigns `settings.PERFKIT` as it needs (the parsed settings are reset on every change)."""
    settings.MIDDLEWARE = MIDDLEWARE
    settings.PERFKIT = {"monitor": {"token": "test-token"}}
    return settings


def count(name: str, labels: tuple[str, ...]) -> float:
    """A series of the process collector: a histogram's count or a counter's value."""
    family: Any = default_collector().families.get(name)
    if family is None:
        return 0.0
    row = family.series.get(labels)
    if row is None:
        return 0.0
    return float(sum(row[:-1])) if isinstance(row, list) else float(row)
