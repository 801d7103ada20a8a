"""The servers benchmarks/realtime.py measures: one module per library, each an ASGI `app` for uvicorn.

Every server does the same job: a WebSocket at `/ws?channel=<name>` (repeatable) subscribed to those
channels, each published message sent to it as a text frame; `POST /publish` with
`{"channel": c, "many": [data, ...]}` publishes each `data` (JSON) through the library's cross-process
(Redis) API, in order. The broker URL comes from `RT_BENCH_REDIS`.

    perfkit_app.py       perfkit.realtime.Hub
    socketio_app.py      python-socketio, socketio.AsyncRedisManager
    channels_app.py      django/channels, channels_redis.core.RedisChannelLayer
    broadcaster_app.py   encode/broadcaster (redis backend) under Starlette
"""
