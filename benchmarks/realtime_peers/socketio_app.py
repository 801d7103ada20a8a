"""python-socketio with `AsyncRedisManager`: a connection joins the rooms named by `?channel=`; a publish
is `sio.emit("msg", data, room=channel)`, which goes through Redis to every process."""

from __future__ import annotations

from typing import Any

import socketio

from realtime_peers._http import REDIS, Receive, Scope, Send, channels_of, publish_endpoint

mgr = socketio.AsyncRedisManager(REDIS, channel="bench-sio")
sio = socketio.AsyncServer(async_mode="asgi", client_manager=mgr, cors_allowed_origins="*")
sio_app = socketio.ASGIApp(sio)


@sio.event
async def connect(sid: str, environ: dict[str, Any]) -> None:
    for channel in channels_of({"query_string": environ.get("QUERY_STRING", "").encode()}):
        await sio.enter_room(sid, channel)


async def emit(channel: str, data: Any) -> None:
    await sio.emit("msg", data, room=channel)


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "http" and scope["path"] == "/publish":
        await publish_endpoint(scope, receive, send, emit)
    else:
        await sio_app(scope, receive, send)
