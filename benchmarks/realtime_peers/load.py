"""The load client of benchmarks/realtime.py: every WebSocket of one run, in this one process.

    python benchmarks/realtime_peers/load.py --peer perfkit --ports 8001,8002 --pids 11,12 [...]

Prints one JSON object (the figures of every scenario) as its last line. Clients are plain `websockets`
connections for every server; socket.io is spoken as raw engine.io v4 over WebSocket (`40` to join the
namespace, `3` answering the server's `2`, events as `42[...]`), which costs the client far less than
python-socketio's AsyncClient, so the client is not what limits the socket.io server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import psutil
from websockets.asyncio.client import ClientConnection, connect

OPEN_TIMEOUT = 30.0
_answers: set[asyncio.Task[None]] = set()  # heartbeat answers in flight (a task needs a reference)


def answer(ws: ClientConnection, text: str) -> None:
    task = asyncio.ensure_future(ws.send(text))
    _answers.add(task)
    task.add_done_callback(_answers.discard)


def parse_perfkit(text: str, ws: ClientConnection) -> list[Any]:
    frame = json.loads(text)
    kind = frame["type"]
    if kind == "message":
        return [frame["data"]]
    if kind == "batch":
        return [m["data"] for m in frame["messages"]]
    if kind == "ping":
        answer(ws, json.dumps({"type": "pong", "t": frame["t"]}))
    return []


def parse_socketio(text: str, ws: ClientConnection) -> list[Any]:
    if text.startswith("42"):
        return [json.loads(text[2:])[1]]
    if text == "2":
        answer(ws, "3")
    return []


def parse_plain(text: str, ws: ClientConnection) -> list[Any]:
    return [json.loads(text)]


PARSERS: dict[str, Callable[[str, ClientConnection], list[Any]]] = {
    "perfkit": parse_perfkit,
    "socketio": parse_socketio,
    "channels": parse_plain,
    "broadcaster": parse_plain,
}


def url(peer: str, port: int, channels: list[str]) -> str:
    query = "&".join(f"channel={c}" for c in channels)
    if peer == "socketio":
        return f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket&{query}"
    return f"ws://127.0.0.1:{port}/ws?{query}"


class Counter:
    """Messages received by a group of connections; `done` once `target` are in."""

    def __init__(self) -> None:
        self.n, self.target, self.done = 0, 0, asyncio.Event()

    def reset(self, target: int) -> None:
        self.n, self.target = 0, target
        self.done.clear()

    def hit(self) -> None:
        self.n += 1
        if self.n >= self.target:
            self.done.set()


@dataclass(eq=False)
class Conn:
    ws: ClientConnection
    parse: Callable[[str, ClientConnection], list[Any]]
    received: int = 0
    seen: set[Any] = field(default_factory=set)  # sequence numbers of the current scenario
    first: dict[Any, float] = field(default_factory=dict)  # seq -> arrival (fan-out)
    latencies: list[float] | None = None
    task: asyncio.Task[None] | None = None
    counter: Counter | None = None

    async def read(self) -> None:
        with contextlib.suppress(Exception):
            async for text in self.ws:
                now = time.time()
                for data in self.parse(str(text), self.ws):
                    self.received += 1
                    self.seen.add(data["s"])
                    if self.latencies is not None:
                        self.latencies.append(now - data["t"])
                    if data.get("first"):
                        self.first.setdefault(data["s"], now)
                    if self.counter is not None:
                        self.counter.hit()


class Load:
    def __init__(self, peer: str, ports: list[int], pids: list[int]) -> None:
        self.peer, self.ports, self.pids = peer, ports, pids
        self.http = httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=64))
        self.seq = 0

    async def open(self, port: int, channels: list[str], *, read: bool = True) -> Conn:
        ws = await connect(
            url(self.peer, port, channels), compression=None, open_timeout=OPEN_TIMEOUT,
            ping_interval=None, max_queue=1 if not read else 16, max_size=2**22,
        )  # fmt: skip
        if self.peer == "socketio":
            await ws.recv()  # the engine.io open packet
            await ws.send("40")
            while not str(await ws.recv()).startswith("40"):
                pass
        conn = Conn(ws, PARSERS[self.peer])
        if read:
            conn.task = asyncio.create_task(conn.read())
        return conn

    async def open_many(self, specs: list[tuple[int, list[str]]], concurrency: int = 64) -> list[Conn]:
        conns: list[Conn | None] = [None] * len(specs)
        index = iter(range(len(specs)))

        async def worker() -> None:
            for i in index:
                conns[i] = await self.open(*specs[i])

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return [c for c in conns if c is not None]

    async def close(self, conns: list[Conn]) -> None:
        async def one(c: Conn) -> None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await c.ws.close()
            if c.task is not None:
                c.task.cancel()

        for i in range(0, len(conns), 500):
            await asyncio.gather(*(one(c) for c in conns[i : i + 500]))

    async def publish(self, port: int, channel: str, many: list[Any]) -> None:
        body = {"channel": channel, "many": many}
        response = await self.http.post(f"http://127.0.0.1:{port}/publish", json=body)
        response.raise_for_status()

    def message(self, pad: int = 0, **extra: Any) -> dict[str, Any]:
        self.seq += 1
        return {"s": self.seq, "t": time.time(), **({"pad": "x" * pad} if pad else {}), **extra}

    async def warm(self, conns: list[Conn], channels: list[str], timeout: float = 30) -> None:
        """Publish probes on every channel until every connection has heard one (subscriptions live)."""
        async with asyncio.timeout(timeout):
            while True:
                for channel in channels:
                    await self.publish(self.ports[0], channel, [self.message(probe=True)])
                await asyncio.sleep(0.3)
                if all(c.received for c in conns):
                    break
        await asyncio.sleep(0.3)
        for c in conns:
            c.received, c.latencies = 0, None
            c.seen.clear()

    def rss(self) -> list[int]:
        return [psutil.Process(pid).memory_info().rss for pid in self.pids]


def spread(load: Load, n: int, channel: Callable[[int], str]) -> list[tuple[int, list[str]]]:
    return [(load.ports[i % len(load.ports)], [channel(i)]) for i in range(n)]


async def idle(load: Load, n: int) -> dict[str, Any]:
    """(a) n idle subscribed connections on the first server process: RSS before and after."""
    before = load.rss()[0]
    t0 = time.perf_counter()
    try:
        async with asyncio.timeout(600):
            conns = await load.open_many([(load.ports[0], [f"idle-{i % 100}"]) for i in range(n)])
    except (TimeoutError, OSError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}", "wanted": n}
    opened = time.perf_counter() - t0
    await asyncio.sleep(2)
    after = load.rss()[0]
    await load.close(conns)
    return {
        "connections": len(conns), "open_s": round(opened, 1), "rss_before": before, "rss_after": after,
        "per_conn": (after - before) / max(1, len(conns)),
    }  # fmt: skip


async def fanout(load: Load, n: int, burst: int, rounds: int) -> dict[str, Any]:
    """(b) n subscribers of one channel over both processes; bursts of `burst` publishes."""
    conns = await load.open_many(spread(load, n, lambda i: "fan"))
    await load.warm(conns, ["fan"])
    counter = Counter()
    for c in conns:
        c.counter = counter
    rates, first_all, lost = [], [], 0
    for _ in range(rounds):
        for c in conns:
            c.received = 0
            c.first.clear()
        expected = n * burst
        counter.reset(expected)
        many = [load.message(first=(i == 0)) for i in range(burst)]
        t0 = time.time()
        await load.publish(load.ports[0], "fan", many)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(60):
                await counter.done.wait()
        t1 = time.time()
        got = counter.n
        lost += expected - got
        rates.append(got / (t1 - t0))
        arrivals = [c.first.get(many[0]["s"]) for c in conns]
        first_all.append(max(a for a in arrivals if a is not None) - t0 if any(arrivals) else float("nan"))
        await asyncio.sleep(0.5)
    await load.close(conns)
    return {
        "rate": statistics.median(rates), "rates": [round(r) for r in rates],
        "first_to_all_ms": statistics.median(first_all) * 1000, "lost": lost,
    }  # fmt: skip


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] * 1000


async def latency(
    load: Load, n: int, rate: float, seconds: float, slow: bool = False, hog_pad: int = 16384
) -> dict[str, Any]:
    """(c) n connections over 100 channels (10 each), `rate` publishes/s to random channels.
    (d) with `slow`: one more connection that never reads, on a channel fed `hog_pad`-byte messages."""
    conns = await load.open_many(spread(load, n, lambda i: f"lat-{i % 100}"))
    await load.warm(conns, [f"lat-{k}" for k in range(100)])
    samples: list[float] = []
    for c in conns:
        c.latencies = samples
    hog = await load.open(load.ports[0], ["hog"], read=False) if slow else None
    rng = random.Random(17)
    published = 0
    rss_start = load.rss()
    rss_max = list(rss_start)
    pending: set[asyncio.Task[None]] = set()
    t0 = time.perf_counter()
    for k in range(int(rate * seconds)):
        delay = t0 + k / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        channel = f"lat-{rng.randrange(100)}"
        task = asyncio.create_task(load.publish(load.ports[k % 2], channel, [load.message()]))
        pending.add(task)
        task.add_done_callback(pending.discard)
        published += 1
        if slow:
            hog_task = asyncio.create_task(load.publish(load.ports[1], "hog", [load.message(pad=hog_pad)]))
            pending.add(hog_task)
            hog_task.add_done_callback(pending.discard)
        if k % 50 == 0:
            rss_max = [max(a, b) for a, b in zip(rss_max, load.rss(), strict=True)]
    await asyncio.gather(*pending, return_exceptions=True)
    await asyncio.sleep(2)
    rss_end = load.rss()
    expected = published * (n // 100)
    result = {
        "p50_ms": pct(samples, 0.50), "p99_ms": pct(samples, 0.99), "max_ms": pct(samples, 1.0),
        "delivered": len(samples), "expected": expected,
        "rss_growth": [b - a for a, b in zip(rss_start, rss_max, strict=True)],
        "rss_end_growth": [b - a for a, b in zip(rss_start, rss_end, strict=True)],
    }  # fmt: skip
    if hog is not None:
        await load.close([hog])
    await load.close(conns)
    return result


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--peer", required=True, choices=sorted(PARSERS))
    ap.add_argument("--ports", required=True)
    ap.add_argument("--pids", required=True)
    ap.add_argument("--scenarios", default="idle,fanout,latency,slow")
    ap.add_argument("--idle", type=int, default=10_000)
    ap.add_argument("--fanout", type=int, default=1000)
    ap.add_argument("--burst", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=100)
    ap.add_argument("--seconds", type=float, default=10)
    args = ap.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    load = Load(args.peer, [int(x) for x in args.ports.split(",")], [int(x) for x in args.pids.split(",")])
    out: dict[str, Any] = {"peer": args.peer}
    scenarios = args.scenarios.split(",")
    try:
        if "idle" in scenarios:
            out["idle"] = await idle(load, min(args.idle, hard - 200))
        if "fanout" in scenarios:
            out["fanout"] = await fanout(load, args.fanout, args.burst, args.rounds)
        if "latency" in scenarios:
            out["latency"] = await latency(load, args.connections, args.rate, args.seconds)
        if "slow" in scenarios:
            out["slow"] = await latency(load, args.connections, args.rate, args.seconds, slow=True)
    finally:
        await load.http.aclose()
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
