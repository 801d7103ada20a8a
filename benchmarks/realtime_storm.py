"""A connection storm on the real-time hub (issue 17): N WebSockets opened at once against one uvicorn
process, each subscribing on connect; opens/s until every one is subscribed, and how many were refused.

    python benchmarks/realtime_storm.py [--connections 5000] [--channels same,distinct,resume]
                                        [--src /path/to/perfkit/src] [--parallel 1000]

`same`: every connection on one channel; `distinct`: a channel each; `resume`: one channel, each
connection resuming from an offset (a reconnect storm after a deploy: the history read path).
`--src` runs the server on another checkout's sources (the before/after figure: main vs a branch).
The server is benchmarks/realtime_peers/perfkit_app.py (uvloop, httptools, websockets-sansio) on
`RT_BENCH_REDIS` (default redis://127.0.0.1:6379/14; its `bench:pk:` keys are deleted after); the
clients run in this process. Bounded: every phase has a deadline, every process is stopped by pid.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import redis
from websockets.asyncio.client import connect

HERE = Path(__file__).resolve().parent
REDIS_URL = os.environ.get("RT_BENCH_REDIS", "redis://127.0.0.1:6379/14")
PREFIX = "bench:pk:"  # the prefix of realtime_peers/perfkit_app.py
DEADLINE = 300.0  # seconds for one storm


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(src: Path, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(src), str(HERE)]),
        "RT_BENCH_REDIS": REDIS_URL,
        "RT_BENCH_SETTINGS": "{}",
    }
    cmd = [
        sys.executable, "-m", "uvicorn", "realtime_peers.perfkit_app:app", "--host", "127.0.0.1",
        "--port", str(port), "--loop", "uvloop", "--http", "httptools", "--ws", "websockets-sansio",
        "--no-access-log", "--log-level", "warning", "--backlog", "4096",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=HERE, env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("server did not listen within 30 s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


async def storm(port: int, n: int, mode: str, parallel: int, epoch: str) -> dict[str, Any]:
    """Open n connections (at most `parallel` handshakes at once), each subscribing; hold them all."""
    gate = asyncio.Semaphore(parallel)
    opened: list[Any] = []
    refused: dict[str, int] = {}
    failed = 0

    async def one(i: int) -> None:
        nonlocal failed
        channel = "storm" if mode != "distinct" else f"storm-{i}"
        url = f"ws://127.0.0.1:{port}/ws"
        async with gate:
            try:
                ws = await connect(url, open_timeout=60, ping_interval=None, close_timeout=1)
            except Exception:
                failed += 1
                return
            request: dict[str, Any] = {"type": "subscribe", "channel": channel, "id": 1}
            if mode == "resume":
                request.update(epoch=epoch, offset=1)
            await ws.send(json.dumps(request))
            while True:
                frame = json.loads(await ws.recv())
                if frame.get("type") == "subscribed":
                    break
                if frame.get("type") == "error":
                    refused[frame["code"]] = refused.get(frame["code"], 0) + 1
                    break
            opened.append(ws)

    start = time.perf_counter()
    async with asyncio.timeout(DEADLINE):
        await asyncio.gather(*(one(i) for i in range(n)))
    seconds = time.perf_counter() - start
    await asyncio.gather(*(ws.close() for ws in opened), return_exceptions=True)
    subscribed = len(opened) - sum(refused.values())
    return {
        "mode": mode, "connections": n, "seconds": round(seconds, 2),
        "opens_per_s": round(subscribed / seconds), "subscribed": subscribed, "refused": refused,
        "failed": failed,
    }  # fmt: skip


async def seed(port: int) -> str:
    """Publish two messages on `storm` (for `resume`) through the server's hub; returns its epoch."""
    from perfkit.realtime import Hub

    hub = Hub(REDIS_URL, prefix=PREFIX)
    try:
        await hub.publish("storm", 1)
        return (await hub.publish("storm", 2)).epoch
    finally:
        await hub.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--connections", type=int, default=5000)
    ap.add_argument("--channels", default="same,distinct,resume")
    ap.add_argument("--parallel", type=int, default=1000)
    ap.add_argument("--src", type=Path, default=HERE.parent / "src")
    args = ap.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    results = []
    for mode in args.channels.split(","):
        port = free_port()
        proc = start_server(args.src.resolve(), port)
        try:
            epoch = asyncio.run(seed(port)) if mode == "resume" else ""
            results.append(asyncio.run(storm(port, args.connections, mode, args.parallel, epoch)))
        finally:
            stop(proc)
            client = redis.Redis.from_url(REDIS_URL)
            keys = list(client.scan_iter(f"{PREFIX}*"))
            if keys:
                client.delete(*keys)
            client.close()
        print(json.dumps(results[-1]), flush=True)
    print(f"\nsrc: {args.src}")
    print(f"{'mode':<10}{'connections':>12}{'seconds':>9}{'opens/s':>9}{'refused':>9}{'failed':>8}")
    for r in results:
        refused = sum(r["refused"].values())
        print(
            f"{r['mode']:<10}{r['connections']:>12}{r['seconds']:>9}{r['opens_per_s']:>9}"
            f"{refused:>9}{r['failed']:>8}"
        )


if __name__ == "__main__":
    main()
