"""The servers benchmarks/realtime.py measures: one module per library, each an ASGI `app` for uvicorn.

Every server does the same job: a WebSocket at `/ws?channel=<name>` (repeatable; socket.io's own path
for python-socketio) subscribed to those channels, each message published on them sent to it as a text
frame. Messages are published by the load client (load.py) through each library's own cross-process
(Redis) API, so the servers only fan out. The broker URL comes from `RT_BENCH_REDIS`.

    perfkit_app.py       perfkit.realtime.Hub
    socketio_app.py      python-socketio, socketio.AsyncRedisManager
    channels_app.py      django/channels, channels_redis.core.RedisChannelLayer
    broadcaster_app.py   encode/broadcaster (redis backend) under Starlette
"""
