"""CPU work off the event loop: perfkit.cpu.ProcessPool against ProcessPoolExecutor + run_in_executor.

    python benchmarks/cpu.py [--seconds 5] [--workers 2] [--nice 0]

Measured for each contender in the same run, each with warm workers (started before measuring):
  - dispatch: from the call (`pool.run(f)` / `loop.run_in_executor(ppe, f)`) to the first line of `f` in
    the worker (CLOCK_MONOTONIC is one clock for every process on Linux), and the whole round trip of a
    no-op, 500 sequential calls on idle workers: p50 and p99;
  - event-loop lag while CPU tasks run flat out: every worker busy with 20 ms spins and the queue kept
    full for `--seconds`, a probe sleeps 1 ms in a loop and records how late it wakes: p50, p99, max;
    plus the same probe with no CPU work (the machine's own noise floor, which the targets sit on).
Targets (issue 19): lag p99 <= 5 ms under load, dispatch overhead <= 1 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from perfkit.cpu import ProcessPool

_perf = time.perf_counter


def started_at() -> float:
    return time.perf_counter()


def noop() -> None:
    return None


def spin(seconds: float) -> int:
    end = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < end:
        n += 1
    return n


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def dispatch(call: Callable[..., Awaitable[Any]], n: int = 500) -> tuple[list[float], list[float]]:
    to_start, round_trip = [], []
    for _ in range(20):
        await call(noop)
    for _ in range(n):
        t0 = _perf()
        began = await call(started_at)
        to_start.append(began - t0)
        t0 = _perf()
        await call(noop)
        round_trip.append(_perf() - t0)
    return to_start, round_trip


async def lag(seconds: float, load: Callable[[], Awaitable[Any]] | None, concurrency: int) -> list[float]:
    stop = time.monotonic() + seconds
    lags: list[float] = []

    async def keep_busy() -> None:
        while time.monotonic() < stop:
            assert load is not None
            await load()

    tasks = [asyncio.ensure_future(keep_busy()) for _ in range(concurrency if load else 0)]
    await asyncio.sleep(0.2)  # the workers are saturated
    while time.monotonic() < stop:
        t0 = _perf()
        await asyncio.sleep(0.001)
        lags.append(_perf() - t0 - 0.001)
    await asyncio.gather(*tasks)
    return lags


def ms(values: list[float], q: float) -> float:
    return pct(values, q) * 1000


async def measure(
    name: str, call: Callable[..., Awaitable[Any]], seconds: float, busy: int
) -> dict[str, float]:
    to_start, rtt = await dispatch(call)
    cpu0 = time.process_time()
    for _ in range(500):
        await call(noop)
    cpu_us = (time.process_time() - cpu0) / 500 * 1e6  # this process, every thread: the loop's share
    lags = await lag(seconds, lambda: call(spin, 0.02), busy)
    return {
        "dispatch p50": ms(to_start, 0.5),
        "dispatch p99": ms(to_start, 0.99),
        "round trip p50": ms(rtt, 0.5),
        "parent CPU µs/job": cpu_us,
        "lag p50": ms(lags, 0.5),
        "lag p99": ms(lags, 0.99),
        "lag max": max(lags) * 1000,
    }


async def main(seconds: float, workers: int, nice: int, rounds: int) -> None:
    loop = asyncio.get_running_loop()
    results: dict[str, list[dict[str, float]]] = {
        "perfkit ProcessPool": [],
        "ProcessPoolExecutor": [],
        "floor": [],
    }

    def initializer() -> None:
        if nice:
            os.nice(nice)

    pool = ProcessPool(workers, max_pending=workers * 4, nice=nice)
    await pool.start()
    with ProcessPoolExecutor(workers, initializer=initializer) as ppe:
        await asyncio.gather(*(loop.run_in_executor(ppe, noop) for _ in range(workers * 4)))  # warm

        def peer(fn: Callable[..., Any], *args: Any) -> Awaitable[Any]:
            return loop.run_in_executor(ppe, fn, *args)

        contenders = [("perfkit ProcessPool", pool.run), ("ProcessPoolExecutor", peer)]
        for r in range(rounds):
            floor = await lag(min(seconds, 2), None, 0)
            results["floor"].append(
                {"lag p50": ms(floor, 0.5), "lag p99": ms(floor, 0.99), "lag max": max(floor) * 1000}
            )
            for name, call in contenders[r % 2 :] + contenders[: r % 2]:
                results[name].append(await measure(name, call, seconds, workers * 3))
    await pool.close()
    print(
        f"workers={workers} nice={nice} rounds={rounds} seconds={seconds} cpus={os.cpu_count()} "
        f"python={sys.version.split()[0]}; medians over rounds (ms unless said)"
    )
    keys = list(results["perfkit ProcessPool"][0])
    print("| contender | " + " | ".join(keys) + " |")
    print("|---|" + "---:|" * len(keys))
    for name, rows in results.items():
        cells = [statistics.median(row[k] for row in rows) if k in rows[0] else None for k in keys]
        shown = " | ".join("" if c is None else f"{c:.3f}" for c in cells)
        print(f"| {name if name != 'floor' else '(no CPU work: noise floor)'} | {shown} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument(
        "--workers", type=int, default=max(1, (os.cpu_count() or 2) - 1)
    )  # the pool's default
    parser.add_argument("--nice", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.seconds, args.workers, args.nice, args.rounds))
