"""Settings of the tiny project the server tests run under gunicorn (WSGI) and uvicorn (ASGI):
`DJANGO_SETTINGS_MODULE=tests.django.server_settings`; the monitor store comes from PERFKIT_MONITOR_URL."""

from __future__ import annotations

SECRET_KEY = "perfkit-server-tests-only"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
USE_TZ = True
ROOT_URLCONF = "tests.django.server_urls"
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "perfkit.django"]
MIDDLEWARE = ["perfkit.django.PerfkitMiddleware"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
PERFKIT = {"monitor": {"token": "server-token", "publish_interval": 0.2}}
