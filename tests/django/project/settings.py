"""The Django project the suite's Django tests run in (configured by tests/conftest.py for the session).

Tests that need other settings use pytest-django's `settings` fixture or `override_settings`; tests that
run a server (uvicorn, gunicorn) point DJANGO_SETTINGS_MODULE at a module of their own.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

SECRET_KEY = "perfkit-tests-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
ROOT_URLCONF = "tests.django.project.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "perfkit.django",
    "tests.django.tickets",
]
MIDDLEWARE: list[str] = []
_PG = urlsplit(os.environ.get("PERFKIT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"))
# each pytest process makes its own test databases (parallel runs on one machine never collide)
DATABASES = {
    "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
    "pg": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": (_PG.path or "/test").lstrip("/"),
        "USER": _PG.username or "postgres",
        "PASSWORD": _PG.password or "",
        "HOST": _PG.hostname or "127.0.0.1",
        "PORT": str(_PG.port or 5432),
        "TEST": {"NAME": f"test_perfkit_dj_{os.getpid()}", "DEPENDENCIES": []},  # runnable alone
    },
}
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
PERFKIT = {"monitor": {"token": "test-token"}}
# no migrations: every table is created in one pass (the tickets app has none, and on PostgreSQL its
# foreign key to auth_user would otherwise be created before auth's migrations make that table)
MIGRATION_MODULES = {app.rsplit(".", 1)[-1]: None for app in INSTALLED_APPS}
