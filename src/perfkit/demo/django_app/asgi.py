"""`uvicorn perfkit.demo.django_app.asgi:application`: the demo project under ASGI."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "perfkit.demo.django_app.settings")
application = get_asgi_application()
