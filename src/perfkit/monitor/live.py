"""`GET /perf/live`: Server-Sent Events, one metrics snapshot per second, across every process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import TYPE_CHECKING, Any

from perfkit.monitor import kpis
from perfkit.monitor.sampler import Sampler
from perfkit.monitor.snapshots import rows
from perfkit.redaction import redact
from perfkit.web.types import Receive, Send

if TYPE_CHECKING:
    from perfkit.monitor.monitor import Monitor


async def frame(monitor: Monitor, sampler: Sampler) -> dict[str, Any]:
    """One snapshot: rates over the last second, latency and ratios over the last 10 s, levels now."""
    await sampler.sample()
    last, secs = sampler.delta(1.0)
    recent, recent_secs = sampler.delta(10.0)
    overall, _ = kpis.requests(last, secs or 1.0)
    ten, _ = kpis.requests(recent, recent_secs or 1.0)
    levels = sampler.latest or {"metrics": {}}
    in_flight = sum(v for _, v in rows(levels, "http_requests_in_flight"))
    realtime = kpis.realtime(recent, recent_secs or 1.0)
    data: dict[str, Any] = {
        "t": time.time(),
        "processes": sampler.processes,
        "throughput_rps": overall["throughput_rps"] if secs else 0.0,
        "errors_per_s": round(overall["errors"] / secs, 3) if secs else 0.0,
        "p50_ms": ten["p50_ms"],
        "p95_ms": ten["p95_ms"],
        "p99_ms": ten["p99_ms"],
        "error_rate": ten["error_rate"],
        "cache_hit_ratio": kpis.cache(recent)["hit_ratio"],
        "in_flight": in_flight,
        "realtime_connections": sum(v for _, v in rows(levels, "realtime_connections")),
        "realtime_out_per_s": kpis.realtime(last, secs)["messages_out_per_s"] if secs else 0.0,
        "realtime_lag_p99_ms": realtime["lag_p99_ms"],
        **await monitor.system(),
    }
    if monitor.jobs is not None:
        with contextlib.suppress(Exception):
            depth: dict[str, int] = {}
            for (queue, _p), n in (await monitor.jobs.depth()).items():
                depth[queue] = depth.get(queue, 0) + n
            data["queue_depth"] = depth
    return data


async def stream(
    monitor: Monitor, receive: Receive, send: Send, limit: int | None, interval: float = 1.0
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"text/event-stream"),
                (b"cache-control", b"no-store"),
                (b"x-accel-buffering", b"no"),
            ],
        }
    )
    gone = asyncio.Event()

    async def watch() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        gone.set()

    watcher = asyncio.create_task(watch())
    sampler = Sampler(monitor.merged, keep=12.0)
    await sampler.sample()
    sent = 0
    loop = asyncio.get_running_loop()
    tick = loop.time()
    try:
        while not gone.is_set() and (limit is None or sent < limit):
            tick += interval  # a fixed cadence: the time a frame takes does not delay the next one
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(gone.wait(), max(0.0, tick - loop.time()))
            if gone.is_set():
                break
            stamp = time.time()
            payload = redact(json.dumps({**await frame(monitor, sampler), "t": stamp}, separators=(",", ":")))
            await send(
                {"type": "http.response.body", "body": f"data: {payload}\n\n".encode(), "more_body": True}
            )
            sent += 1
        if not gone.is_set():
            await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
