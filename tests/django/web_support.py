"""Fixtures and helpers shared by the middleware, monitor and ASGI tests."""

from __future__ import annotations

from typing import Any

import pytest

from perfkit.metrics import default_collector

MIDDLEWARE = [
    "perfkit.django.PerfkitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
TEST_CACHE = {"BACKEND": "tests.django.web_cache.PerfkitTestCache", "LOCATION": "memory://"}


@pytest.fixture
def perfkit(settings: Any) -> Any:
    """The test project with perfkit's middleware (first), sessions and auth; `settings.PERFKIT` as given
    by the test (assign it; the parsed settings are reset on every change)."""
    settings.MIDDLEWARE = MIDDLEWARE
    settings.PERFKIT = {"monitor": {"token": "test-token"}}
    yield settings


def count(name: str, labels: tuple[str, ...]) -> float:
    """A series of the process collector: a histogram's count or a counter's value."""
    family: Any = default_collector().families.get(name)
    if family is None:
        return 0.0
    row = family.series.get(labels)
    if row is None:
        return 0.0
    return float(sum(row[:-1])) if isinstance(row, list) else float(row)
