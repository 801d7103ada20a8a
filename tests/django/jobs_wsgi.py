"""The WSGI application gunicorn serves in the job tests (settings: tests/django/jobs_settings.py)."""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.django.jobs_settings")

from django.core.wsgi import get_wsgi_application

application = get_wsgi_application()
