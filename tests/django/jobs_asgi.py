"""The ASGI application uvicorn serves in the job tests (settings: tests/django/jobs_settings.py)."""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.django.jobs_settings")

from django.core.asgi import get_asgi_application

application = get_asgi_application()
