"""/perf/live: Server-Sent Events, one snapshot per second, on a real uvicorn server."""

from __future__ import annotations

import asyncio
import itertools
import json

import httpx

from .conftest import AUTH, Env, serve


async def test_live_sends_one_snapshot_per_second(env: Env) -> None:
    """Frames arrive about a second apart, as JSON, and show the traffic sent meanwhile."""
    async with serve(env.app) as base, httpx.AsyncClient(base_url=base, timeout=10) as client:

        async def traffic() -> None:
            for _ in range(40):
                await client.get("/big")
                await asyncio.sleep(0.05)  # spread requests over the frames

        load = asyncio.create_task(traffic())
        frames = []
        async with client.stream("GET", "/perf/live?max=3", headers=AUTH) as response:
            assert response.status_code == 200
            assert response.headers["content-type"] == "text/event-stream"
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    frames.append(json.loads(line[6:]))
        await load
    assert len(frames) == 3
    # a fixed 1 s cadence: a frame delayed by a stalled (shared, loaded) machine is followed by an early
    # one, so the span of the stream, not each gap, is what one-per-second pins
    span = frames[-1]["t"] - frames[0]["t"]
    assert 1.5 < span < 3.5, [f["t"] for f in frames]
    assert all(b["t"] > a["t"] for a, b in itertools.pairwise(frames))
    assert max(f["throughput_rps"] for f in frames) > 0
    assert {"p95_ms", "error_rate", "cache_hit_ratio", "cpu_percent", "memory_percent", "queue_depth"} <= set(
        frames[0]
    )
