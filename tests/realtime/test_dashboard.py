"""The hub's metrics on the monitor's live stream (`/perf/live`, what the dashboard's real-time chart
draws): open connections, messages sent per second, publish-to-send lag p99; a real uvicorn server
serving the hub's WebSocket and the monitor from one collector."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import uvicorn

from perfkit.metrics import Collector
from perfkit.monitor import Monitor, MonitorConfig
from perfkit.monitor.routes import MonitorApp
from perfkit.realtime import Hub
from perfkit.realtime.client import Client
from tests.conftest import eventually, free_port

from .test_delivery import collect, subscribed


async def test_live_frames_carry_the_hubs_metrics() -> None:
    """With two clients subscribed and messages flowing, a `/perf/live` frame reports 2 real-time
    connections, messages sent per second above 0 and a lag p99 in milliseconds; the dashboard's page
    has the chart that draws them."""
    collector = Collector()
    hub = Hub("memory://", collector=collector, batch_window=0)
    monitor = Monitor(MonitorConfig(token="t"), collector=collector)
    perf = MonitorApp(monitor, prefix="/perf")
    ws = hub.websocket(auth=None, can_subscribe=lambda user, channel: True, origins=["*"])

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await hub.close()
            await send({"type": "lifespan.shutdown.complete"})
        elif scope["path"].startswith("/perf"):
            await perf(scope, receive, send)
        else:
            await ws(scope, receive, send)

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    await eventually(lambda: _started(server, task), timeout=10, what="uvicorn listening")
    base = f"http://127.0.0.1:{port}"
    try:
        async with (
            Client(f"ws://127.0.0.1:{port}/ws", channels=["tick"]) as a,
            Client(f"ws://127.0.0.1:{port}/ws", channels=["tick"]) as b,
            httpx.AsyncClient(base_url=base, timeout=10) as http,
        ):
            await subscribed(a, "tick")
            await subscribed(b, "tick")
            frames: list[dict[str, Any]] = []
            async with http.stream("GET", "/perf/live?max=3", headers={"Authorization": "Bearer t"}) as live:
                async for line in live.aiter_lines():
                    if line.startswith("data: "):
                        frames.append(json.loads(line[6:]))
                        for i in range(20):
                            await hub.publish("tick", i)
                        await collect(a, 20)
                        await collect(b, 20)
            page = (await http.get("/perf/")).text
    finally:
        server.should_exit = True
        await task
    last = frames[-1]
    assert last["realtime_connections"] == 2, last
    assert max(f["realtime_out_per_s"] for f in frames) > 0, frames
    assert last["realtime_lag_p99_ms"] is not None and last["realtime_lag_p99_ms"] >= 0, last
    assert 'id="chart-realtime"' in page


async def _started(server: uvicorn.Server, task: asyncio.Task[None]) -> bool:
    if task.done():
        raise AssertionError(f"uvicorn stopped: {task.exception()!r}")
    return bool(server.started)
