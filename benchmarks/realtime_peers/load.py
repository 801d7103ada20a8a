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

import psutil
from websockets.asyncio.client import ClientConnection, connect

OPEN_TIMEOUT = 30.0
_answers: set[asyncio.Task[None]] = set()  # heartbeat answers in flight (a task needs a reference)


RETRY_AFTER = 0.2  # seconds before a subscribe refused as `unavailable` is sent again
refused: dict[str, int] = {}  # error codes perfkit answered subscribes with (retried when unavailable)
reasons: list[str] = []  # a few of their messages


def answer(ws: ClientConnection, text: str, delay: float = 0) -> None:
    async def later() -> None:
        await asyncio.sleep(delay)
        await ws.send(text)

    task = asyncio.ensure_future(later() if delay else ws.send(text))
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
    elif kind == "error":
        refused[frame["code"]] = refused.get(frame["code"], 0) + 1
        if len(reasons) < 3 and frame["message"] not in reasons:
            reasons.append(frame["message"])
        if frame["code"] == "unavailable":  # the protocol's "try again", which a browser app would do
            answer(ws, json.dumps({"type": "subscribe", "channel": frame["channel"]}), RETRY_AFTER)
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
    "floor": parse_plain,
}


class Publisher:
    """A library's own cross-process publish API, used from this (client) process, as a view, a job or
    a script of the app would use it: the servers only fan out."""

    async def start(self, peer: str, redis_url: str) -> None:
        if peer == "perfkit":
            from perfkit.realtime import Hub

            hub = Hub(redis_url, prefix="bench:pk:")
            self.send = hub.publish
            self.stop = hub.close
        elif peer == "socketio":
            import socketio

            mgr = socketio.AsyncRedisManager(redis_url, channel="bench-sio", write_only=True)

            async def emit(channel: str, data: Any) -> None:
                await mgr.emit("msg", data, namespace="/", room=channel)

            self.send, self.stop = emit, self.nothing
        elif peer == "channels":
            from channels_redis.core import RedisChannelLayer

            layer = RedisChannelLayer(hosts=[redis_url])

            async def group_send(channel: str, data: Any) -> None:
                await layer.group_send(channel, {"type": "bench.msg", "text": json.dumps(data)})

            self.send, self.stop = group_send, layer.flush
        elif peer == "floor":  # nothing to publish through: idle connections only
            self.send, self.stop = self.nowhere, self.nothing
        else:
            from broadcaster import Broadcast

            broadcast = Broadcast(redis_url)
            await broadcast.connect()

            async def publish(channel: str, data: Any) -> None:
                await broadcast.publish(channel, json.dumps(data))

            self.send, self.stop = publish, broadcast.disconnect

    async def nothing(self) -> None:
        return None

    async def nowhere(self, channel: str, data: Any) -> None:
        return None


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

    def hit(self, n: int) -> None:
        self.n += n
        if self.n >= self.target:
            self.done.set()


@dataclass(eq=False)
class Conn:
    ws: ClientConnection
    parse: Callable[[str, ClientConnection], list[Any]]
    received: int = 0
    frames: int = 0
    first: dict[str, float] = field(default_factory=dict)  # when the burst's first message came
    port: int = 0
    control: list[str] = field(default_factory=list)  # the first frames that were not messages
    latencies: list[float] | None = None
    task: asyncio.Task[None] | None = None
    counter: Counter | None = None

    async def read(self) -> None:
        with contextlib.suppress(Exception):
            async for raw in self.ws:
                now = time.time()
                self.frames += 1
                text = str(raw)
                if self.latencies is None:  # counting only: cheap, so the client is not what limits
                    count = text.count('"s":')
                    if not count:
                        self.parse(text, self.ws)  # a heartbeat to answer
                        if len(self.control) < 4:
                            self.control.append(text[:200])
                    elif '"first": true' in text or '"first":true' in text:
                        self.first.setdefault("first", now)
                    self.received += count
                    if self.counter is not None:
                        self.counter.hit(count)
                    continue
                for data in self.parse(text, self.ws):
                    self.received += 1
                    self.latencies.append(now - data["t"])


class Load:
    def __init__(self, peer: str, ports: list[int], pids: list[int], publisher: Publisher) -> None:
        self.peer, self.ports, self.pids, self.publisher = peer, ports, pids, publisher
        self.seq = 0
        self.publish_times: list[float] | None = None  # seconds per publish call, while measured

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
        conn = Conn(ws, PARSERS[self.peer], port=port)
        if read:
            conn.task = asyncio.create_task(conn.read())
        return conn

    async def open_many(
        self, specs: list[tuple[int, list[str]]], concurrency: int = 64, seconds: float = 300
    ) -> list[Conn]:
        """Open them `concurrency` at a time; those not open within `seconds` are not opened."""
        conns: list[Conn | None] = [None] * len(specs)
        index = iter(range(len(specs)))
        deadline = time.monotonic() + seconds

        async def worker() -> None:
            for i in index:
                if time.monotonic() > deadline:
                    return
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

    async def publish(self, channel: str, many: list[Any]) -> None:
        for data in many:
            t0 = time.perf_counter()
            await self.publisher.send(channel, data)
            if self.publish_times is not None:
                self.publish_times.append(time.perf_counter() - t0)

    def message(self, pad: int = 0, **extra: Any) -> dict[str, Any]:
        self.seq += 1
        return {"s": self.seq, "t": time.time(), **({"pad": "x" * pad} if pad else {}), **extra}

    async def warm(self, conns: list[Conn], channels: list[str], timeout: float = 30) -> None:
        """Publish probes on every channel until every connection has heard one (subscriptions live)."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    for channel in channels:
                        await self.publish(channel, [self.message(probe=True)])
                    await asyncio.sleep(0.3)
                    if all(c.received for c in conns):
                        break
        except TimeoutError:
            deaf = [c for c in conns if not c.received]
            ports = {port: sum(1 for c in deaf if c.port == port) for port in self.ports}
            raise RuntimeError(
                f"{len(deaf)} of {len(conns)} connections heard no probe in {timeout} s (per port {ports});"
                f" their first frames: {deaf[0].control}"
            ) from None
        await asyncio.sleep(0.3)
        for c in conns:
            c.received, c.latencies = 0, None

    def cpu(self) -> float:
        """CPU seconds (user + system) the server processes have used so far: other work on the shared
        machine does not count in it, unlike wall-clock rates."""
        return sum(sum(psutil.Process(pid).cpu_times()[:2]) for pid in self.pids)

    def rss(self) -> list[int]:
        return [psutil.Process(pid).memory_info().rss for pid in self.pids]


def spread(load: Load, n: int, channel: Callable[[int], str]) -> list[tuple[int, list[str]]]:
    return [(load.ports[i % len(load.ports)], [channel(i)]) for i in range(n)]


async def idle(load: Load, n: int) -> dict[str, Any]:
    """(a) n idle subscribed connections on the first server process: RSS before and after."""
    before = load.rss()[0]
    t0 = time.perf_counter()
    try:
        conns = await load.open_many([(load.ports[0], [f"idle-{i % 100}"]) for i in range(n)], seconds=240)
    except (TimeoutError, OSError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}", "wanted": n}
    opened = time.perf_counter() - t0
    await asyncio.sleep(2)
    after = load.rss()[0]
    await load.close(conns)
    return {
        "connections": len(conns), "wanted": n, "open_s": round(opened, 1), "rss_before": before,
        "rss_after": after, "per_conn": (after - before) / max(1, len(conns)),
    }  # fmt: skip


async def fanout(load: Load, n: int, burst: int, rounds: int) -> dict[str, Any]:
    """(b) n subscribers of one channel over both processes; bursts of `burst` publishes."""
    conns = await load.open_many(spread(load, n, lambda i: "fan"))
    await load.warm(conns, ["fan"])
    counter = Counter()
    for c in conns:
        c.counter = counter
    rates, first_all, cpu, frames, lost = [], [], [], [], 0
    for _ in range(rounds):
        for c in conns:
            c.received = 0
            c.first.clear()
        expected = n * burst
        counter.reset(expected)
        many = [load.message(first=(i == 0)) for i in range(burst)]
        frames0 = sum(c.frames for c in conns)
        cpu0 = load.cpu()
        t0 = time.time()
        await load.publish("fan", many)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(60):
                await counter.done.wait()
        t1 = time.time()
        got = counter.n
        cpu.append((load.cpu() - cpu0) / max(1, got) * 1e6)
        frames.append((sum(c.frames for c in conns) - frames0) / max(1, got))
        lost += expected - got
        rates.append(got / (t1 - t0))
        arrivals = [c.first.get("first") for c in conns]
        first_all.append(max(a for a in arrivals if a is not None) - t0 if any(arrivals) else float("nan"))
        await asyncio.sleep(0.5)
    await load.close(conns)
    return {
        "rate": statistics.median(rates), "rates": [round(r) for r in rates],
        "first_to_all_ms": statistics.median(first_all) * 1000, "lost": lost,
        "cpu_us_per_msg": statistics.median(cpu), "frames_per_msg": statistics.median(frames),
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
    cpu0 = load.cpu()
    rss_max = list(rss_start)
    pending: set[asyncio.Task[None]] = set()
    publish_times: list[float] = []
    load.publish_times = publish_times
    t0 = time.perf_counter()
    for k in range(int(rate * seconds)):
        delay = t0 + k / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        channel = f"lat-{rng.randrange(100)}"
        task = asyncio.create_task(load.publish(channel, [load.message()]))
        pending.add(task)
        task.add_done_callback(pending.discard)
        published += 1
        if slow:
            hog_task = asyncio.create_task(load.publish("hog", [load.message(pad=hog_pad)]))
            pending.add(hog_task)
            hog_task.add_done_callback(pending.discard)
        if k % 50 == 0:
            rss_max = [max(a, b) for a, b in zip(rss_max, load.rss(), strict=True)]
    await asyncio.gather(*pending, return_exceptions=True)
    load.publish_times = None
    await asyncio.sleep(2)
    rss_end = load.rss()
    cpu_s = load.cpu() - cpu0
    expected = published * (n // 100)
    result = {
        "p50_ms": pct(samples, 0.50), "p99_ms": pct(samples, 0.99), "max_ms": pct(samples, 1.0),
        "publish_p50_ms": pct(publish_times, 0.50), "publish_p99_ms": pct(publish_times, 0.99),
        "delivered": len(samples), "expected": expected, "server_cpu_s": cpu_s,
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
    ap.add_argument("--redis", required=True)
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
    publisher = Publisher()
    await publisher.start(args.peer, args.redis)
    ports, pids = [int(x) for x in args.ports.split(",")], [int(x) for x in args.pids.split(",")]
    load = Load(args.peer, ports, pids, publisher)
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
        await publisher.stop()
    out["refused_subscribes"] = refused
    out["refused_reasons"] = reasons
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
