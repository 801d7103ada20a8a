"""How fast can one sequential enqueue be? perfkit's ENQUEUE script over the leanest possible connection,
against huey's one-at-a-time enqueue, in one run (issue 4's "enqueue >= 1.5x the best peer").

    python benchmarks/jobs_floor.py [--n 10000] [--rounds 3] [--redis URL]

Per round, interleaved, each timed over `n` sequential calls from one process on uvloop:
  - huey: `task(...)` (pickle + one LPUSH through redis-py's synchronous client),
  - perfkit: `await task.enqueue(...)` (the real path: redis-py asyncio, EVALSHA of the ENQUEUE script),
  - floor: the same EVALSHA with the same arguments written by hand to an `asyncio.Protocol` and parsed
    by hiredis, with no client library and no job building at all: the cost of the round trip and of
    the script itself, which no Redis client can go below.
If the floor is not 1.5x huey, no client rewrite gets perfkit's sequential enqueue there: the gap is
the script (lease record, idempotency key, FIFO sequence, wake-up) against huey's bare LPUSH.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from typing import Any

import hiredis
import redis
import uvloop

QUEUE = "pkfloor"


class _Lean(asyncio.Protocol):
    """One connection, replies matched to calls in order: nothing but RESP framing."""

    def __init__(self) -> None:
        self.reader = hiredis.Reader()
        self.waiting: list[asyncio.Future[Any]] = []

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while (reply := self.reader.gets()) is not False:
            self.waiting.pop(0).set_result(reply)

    def call(self, *args: Any) -> asyncio.Future[Any]:
        parts = [b"*%d\r\n" % len(args)]
        for arg in args:
            data = arg if isinstance(arg, bytes) else str(arg).encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
        future = asyncio.get_running_loop().create_future()
        self.waiting.append(future)
        self.transport.write(b"".join(parts))
        return future


async def perfkit_rates(url: str, n: int) -> tuple[float, float]:
    from perfkit import JobQueue

    jobs = JobQueue(url)

    @jobs.task(queue=QUEUE, name="floor.noop")
    async def noop(ctx: Any, value: int) -> None:
        return None

    job = await noop.enqueue(0)  # registers the queue and loads the scripts
    start = time.perf_counter()
    for i in range(n):
        await noop.enqueue(i)
    real = n / (time.perf_counter() - start)

    backend: Any = jobs.backend
    record = await backend.get(job.id)
    keys = backend._k(QUEUE)
    args = backend._enqueue_args(keys, [record])
    parts = redis.connection.parse_url(url)
    loop = asyncio.get_running_loop()
    host, port = parts.get("host", "127.0.0.1"), parts.get("port", 6379)
    transport, lean = await loop.create_connection(_Lean, host, port)
    await lean.call("SELECT", parts.get("db", 0))
    sha = backend._scripts["ENQUEUE"].sha
    start = time.perf_counter()
    for _ in range(n):
        args[2] = os.urandom(8).hex()  # a new job id each call, as the queue makes
        await lean.call("EVALSHA", sha, 3, keys.ready, keys.delayed, keys.keys, *args)
    floor = n / (time.perf_counter() - start)
    transport.close()
    await backend.drop()
    await jobs.close()
    return real, floor


def huey_rate(url: str, n: int) -> float:
    from huey import RedisHuey

    huey = RedisHuey(QUEUE, url=url)

    @huey.task()
    def noop(value: int) -> None:
        return None

    start = time.perf_counter()
    for i in range(n):
        noop(i)
    rate = n / (time.perf_counter() - start)
    huey.flush()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--redis", default=os.environ.get("PERFKIT_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
    )
    args = parser.parse_args()
    rows: dict[str, list[float]] = {"huey": [], "perfkit": [], "floor": []}
    for _ in range(args.rounds):
        rows["huey"].append(huey_rate(args.redis, args.n))
        real, floor = uvloop.run(perfkit_rates(args.redis, args.n))
        rows["perfkit"].append(real)
        rows["floor"].append(floor)
    print(f"sequential enqueue, {args.n} calls per round, {args.rounds} rounds, {args.redis}")
    for name, rates in rows.items():
        ratios = " ".join(f"{r / h:.2f}" for r, h in zip(rates, rows["huey"], strict=True))
        print(f"  {name:8s} {statistics.median(rates):8.0f}/s   / huey per round: {ratios}")


if __name__ == "__main__":
    main()
