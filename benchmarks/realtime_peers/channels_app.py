"""django/channels with channels_redis's default `RedisChannelLayer`: a consumer joins the groups named by
`?channel=` (`group_add`); the load client publishes with `group_send(channel, {"type": "bench.msg"})`.
Served by uvicorn like the others (Daphne is channels' own server; uvicorn keeps the HTTP/WebSocket
layer the same for every library)."""

from __future__ import annotations

from typing import Any

from django.conf import settings

import django
from realtime_peers._common import REDIS, channels_of

settings.configure(
    DEBUG=False,
    INSTALLED_APPS=["channels"],
    CHANNEL_LAYERS={
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [REDIS]}}
    },
)
django.setup()

from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402 -- needs the settings
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402


class BenchConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]
    async def connect(self) -> None:
        self.groups_joined = channels_of(self.scope)
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        for group in self.groups_joined:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def bench_msg(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["text"])


app = ProtocolTypeRouter({"websocket": URLRouter([path("ws", BenchConsumer.as_asgi())])})
