"""python-socketio with `AsyncRedisManager`: a connection joins the rooms named by `?channel=`; the load
client publishes with `AsyncRedisManager(write_only=True).emit("msg", data, room=channel)`."""

from __future__ import annotations

from typing import Any

import socketio

from realtime_peers._common import REDIS, channels_of

mgr = socketio.AsyncRedisManager(REDIS, channel="bench-sio")
sio = socketio.AsyncServer(async_mode="asgi", client_manager=mgr, cors_allowed_origins="*")
app = socketio.ASGIApp(sio)


@sio.event
async def connect(sid: str, environ: dict[str, Any]) -> None:
    for channel in channels_of({"query_string": environ.get("QUERY_STRING", "").encode()}):
        await sio.enter_room(sid, channel)
