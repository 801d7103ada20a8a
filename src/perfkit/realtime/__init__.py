"""Real-time updates: a WebSocket and SSE hub with channels, batching, heartbeats, Redis fan-out and
lossless resume (docs/realtime.md has the guide and the wire protocol).

    config.py       HubConfig: the settings, resolved once
    protocol.py     the wire protocol: frames, channel names, SSE positions, codes
    broker.py       the broker contract and registry; memory.py, redis.py (+ lua/) the brokers
    fanout.py       one subscription per channel per process, gap-free streams, holes filled
    connection.py   one connection: bounded queue, batching, the writer with send timeouts
    session.py      a connection's requests: subscribe/resume, unsubscribe, publish, ping/pong
    security.py     Origin allow-list, auth at connect, per-channel policies
    websocket.py    sse.py: the ASGI endpoints
    hub.py          Hub: publish, the endpoints, heartbeats; sync.py: hub.sync; health.py: hub.check()
    outbox.py       fire-and-forget publishing in call order
    integrations.py job events and SQLAlchemy commits published
    bridges.py      the cache invalidator's row changes published per model
    client.py       the Python client (WebSocket and SSE), resuming after reconnects
    static.py       ClientScript: the JavaScript client (static/perfkit-realtime.js), served
"""

from perfkit.realtime.config import HubConfig
from perfkit.realtime.health import HealthResult, HubCheck
from perfkit.realtime.hub import Hub
from perfkit.realtime.protocol import Position
from perfkit.realtime.static import ClientScript

__all__ = ["ClientScript", "HealthResult", "Hub", "HubCheck", "HubConfig", "Position"]
