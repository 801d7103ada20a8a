"""The server tests' entry points: `wsgi` for gunicorn, `asgi` for uvicorn (a Channels
ProtocolTypeRouter with a websocket consumer beside Django's HTTP app, when channels is installed)."""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.django.server_settings")

from django.core.asgi import get_asgi_application  # (after the settings module is set)
from django.core.wsgi import get_wsgi_application

wsgi = get_wsgi_application()
http = get_asgi_application()
asgi: Any = http
try:
    from channels.generic.websocket import AsyncWebsocketConsumer
    from channels.routing import ProtocolTypeRouter, URLRouter
    from django.urls import path

    class Echo(AsyncWebsocketConsumer):  # type: ignore[misc]
        async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
            await self.send(text_data=f"echo {text_data}")

    asgi = ProtocolTypeRouter({"http": http, "websocket": URLRouter([path("ws/echo/", Echo.as_asgi())])})
except ImportError:  # channels not installed: plain Django ASGI
    pass
