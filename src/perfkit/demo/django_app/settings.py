"""Django settings of the demo project, from the `PERFKIT_DEMO_*` variables `perfkit demo` passes to its
processes (`perfkit.demo.settings.DemoSettings`): the app and the worker read the same stores.

    DJANGO_SETTINGS_MODULE=perfkit.demo.django_app.settings

PERFKIT_DEMO_SECRET_KEY is made up by the demo for each run and given to both processes: the cache
backend signs what it pickles with a key derived from it.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import unquote, urlsplit

from perfkit.demo.app.runtime import CACHE_NAMESPACE
from perfkit.demo.settings import PG_SCHEMA, SECRET_KEY_ENV, DemoSettings, web_rules
from perfkit.errors import ConfigurationError

_demo = DemoSettings.from_environ()


def _database(demo: DemoSettings) -> dict[str, Any]:
    """The seeder's database as a Django DATABASES entry (PostgreSQL: the demo's own schema)."""
    if not demo.postgres:
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": demo.database_url.removeprefix("sqlite:///"),
            "OPTIONS": {"timeout": 5},  # the app and the worker write the same file (WAL, set by the seeder)
            "CONN_MAX_AGE": None,
        }
    url = urlsplit(demo.database_url)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": url.path.lstrip("/"),
        "USER": unquote(url.username or ""),
        "PASSWORD": unquote(url.password or ""),
        "HOST": url.hostname or "",
        "PORT": str(url.port or ""),
        "OPTIONS": {"options": f"-c search_path={PG_SCHEMA}"},
        # served under ASGI: each request's sync work runs in a thread of its own, so a persistent
        # connection per thread is one connection per request that nobody reuses, until PostgreSQL
        # refuses new clients ("too many clients already"). Django's advice for ASGI: no persistent
        # connections (or a pool).
        "CONN_MAX_AGE": 0,
    }


SECRET_KEY = os.environ.get(SECRET_KEY_ENV, "")
if not SECRET_KEY:
    raise ConfigurationError(SECRET_KEY_ENV, "is not set; start the demo with `perfkit demo --django`")
DEBUG = False  # DEBUG keeps every query in memory
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
USE_TZ = False  # the seeder writes naive timestamps
ROOT_URLCONF = "perfkit.demo.django_app.urls"
INSTALLED_APPS = ["perfkit.django", "perfkit.demo.django_app"]
MIDDLEWARE = ["perfkit.django.PerfkitMiddleware"]
DATABASES = {"default": _database(_demo)}
CACHES = {
    "default": {
        "BACKEND": "perfkit.django.cache.PerfkitCache",
        "LOCATION": _demo.cache_url,
        "OPTIONS": {"l1": "memory://?max_size=10000", "namespace": CACHE_NAMESPACE},
    }
}
PERFKIT: dict[str, Any] = {
    "web": {"slow_request": 0.5},
    "rules": list(web_rules()),
    "jobs": _demo.jobs_url,
    # the worker gets no token (as the FastAPI demo's): it serves no monitor
    "monitor": {"token": _demo.token, "url": _demo.monitor_url, "window": "15m"} if _demo.token else False,
}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
