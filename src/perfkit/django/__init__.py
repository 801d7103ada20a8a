"""perfkit for Django projects, WSGI and ASGI: one app, one middleware, one cache backend.

    INSTALLED_APPS = [..., "perfkit.django"]
    MIDDLEWARE = ["perfkit.django.PerfkitMiddleware", ...]
    CACHES = {"default": {"BACKEND": "perfkit.django.cache.PerfkitCache", "LOCATION": "redis://..."}}
    PERFKIT = {"monitor": {"token": "..."}, "rules": [...], "rate_limit": "100/minute"}
    urlpatterns += [path("perf/", include("perfkit.django.urls"))]

`PERFKIT`'s keys are read by `perfkit.django.conf.get_settings()`; the guide is docs/django.md.
Importing this package imports nothing of Django's beyond what the name lookup needs.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PerfkitMiddleware", "cache_queryset", "register", "rows", "watch"]


def __getattr__(name: str) -> Any:
    if name == "PerfkitMiddleware":
        from perfkit.django.middleware import PerfkitMiddleware

        return PerfkitMiddleware
    if name in ("register", "rows", "watch"):  # the ORM invalidation (perfkit.django.invalidation)
        from perfkit.django import invalidation

        return getattr(invalidation, name)
    if name == "cache_queryset":
        from perfkit.django.querysets import cache_queryset

        return cache_queryset
    raise AttributeError(f"module 'perfkit.django' has no attribute {name!r}")
