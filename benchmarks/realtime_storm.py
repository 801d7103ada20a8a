"""A connection storm on the real-time hub (issue 17): N WebSockets opened at once against one uvicorn
process, each subscribing on connect; opens/s until every one is subscribed, and how many were refused.

    python benchmarks/realtime_storm.py [--connections 5000] [--channels same,distinct,resume]
                                        [--src /path/a/src,/path/b/src] [--parallel 1000]

`same`: every connection on one channel; `distinct`: a channel each; `resume`: one channel, each
connection resuming from an offset (a reconnect storm after a deploy: the history read path).
`--src a,b` runs the server on each checkout's sources in turn (the before/after figure: main vs a
branch, in the same run); the server's CPU time per open (from /proc) is the figure the noise of a
shared machine moves least.
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
        "RT_BENCH_SETTINGS": json.dumps({"heartbeat": 300}),  # the storm client answers no pings
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


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


async def storm(port: int, pid: int, n: int, mode: str, parallel: int, epoch: str) -> dict[str, Any]:
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
            try:
                await ws.send(json.dumps(request))
                while True:
                    frame = json.loads(await ws.recv())
                    if frame.get("type") == "subscribed":
                        break
                    if frame.get("type") == "error":
                        refused[frame["code"]] = refused.get(frame["code"], 0) + 1
                        break
            except Exception:
                failed += 1
                return
            opened.append(ws)

    start, cpu = time.perf_counter(), cpu_seconds(pid)
    async with asyncio.timeout(DEADLINE):
        await asyncio.gather(*(one(i) for i in range(n)))
    seconds, cpu = time.perf_counter() - start, cpu_seconds(pid) - cpu
    await asyncio.gather(*(ws.close() for ws in opened), return_exceptions=True)
    subscribed = len(opened) - sum(refused.values())
    return {
        "mode": mode, "connections": n, "seconds": round(seconds, 2),
        "opens_per_s": round(subscribed / seconds), "subscribed": subscribed, "refused": refused,
        "failed": failed, "server_cpu_ms_per_open": round(cpu * 1000 / n, 2),
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
    ap.add_argument(
        "--src", default=str(HERE.parent / "src"),
        help="comma-separated source folders to compare (e.g. /work/main/src,src), run in turn per mode",
    )  # fmt: skip
    args = ap.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    results = []
    for mode in args.channels.split(","):
        for src in args.src.split(","):
            port = free_port()
            proc = start_server(Path(src).resolve(), port)
            try:
                epoch = asyncio.run(seed(port)) if mode == "resume" else ""
                found = asyncio.run(storm(port, proc.pid, args.connections, mode, args.parallel, epoch))
            finally:
                stop(proc)
                client = redis.Redis.from_url(REDIS_URL)
                keys = list(client.scan_iter(f"{PREFIX}*"))
                if keys:
                    client.delete(*keys)
                client.close()
            results.append({"src": src, **found})
            print(json.dumps(results[-1]), flush=True)
    print(f"\n{'src':<28}{'mode':<10}{'conns':>7}{'seconds':>9}{'opens/s':>9}{'cpu ms/open':>12}"
          f"{'refused':>9}{'failed':>8}")  # fmt: skip
    for r in results:
        refused = sum(r["refused"].values())
        print(
            f"{r['src'][-28:]:<28}{r['mode']:<10}{r['connections']:>7}{r['seconds']:>9}{r['opens_per_s']:>9}"
            f"{r['server_cpu_ms_per_open']:>12}{refused:>9}{r['failed']:>8}"
        )


if __name__ == "__main__":
    main()
