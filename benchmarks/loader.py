"""Per-load overhead of perfkit.loader against aiodataloader, in instructions (callgrind) and in time.

    python benchmarks/loader.py                      # both: instructions per load, then wall time
    python benchmarks/loader.py --only time          # interleaved timing only (noisy on a shared VM)

The workload is the DataLoader's own case: a "request" issues `--keys` concurrent loads of distinct keys
(asyncio.gather), which become one batch call, then loads the same keys again (cache hits). `asyncio` is
the floor both pay (a future per key, one batch call, the two gathers, no loader), so "over the floor"
is each loader's own cost. perfkit runs
a module-level `Loader` inside `perfkit.loader.scope()` (its request-scoped mode); aiodataloader makes a
`DataLoader` per request, as its docs advise. The batch function is the same trivial coroutine for both.

Instructions: each contender runs in a fresh interpreter under `valgrind --tool=callgrind` at two request
counts; (instructions(n2) - instructions(n1)) / (loads(n2) - loads(n1)) cancels start-up and imports.
Needs aiodataloader (`pip install 'perfkit[bench]'`) and valgrind. Takes about two minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


async def batch(keys: list[int]) -> list[int]:
    return keys


def make(kind: str, keys: int):
    items = list(range(keys))
    if kind == "perfkit":
        from perfkit.loader import Loader, scope
        from perfkit.metrics import Collector

        loader = Loader(batch, max_batch=max(100, keys), collector=Collector(), name="bench")

        async def request() -> None:
            with scope():
                await asyncio.gather(*(loader.load(k) for k in items))
                await asyncio.gather(*(loader.load(k) for k in items))

        return request
    if kind == "asyncio":  # the floor both pay: a future per key, one batch call, gather twice

        async def request_floor() -> None:
            loop = asyncio.get_running_loop()
            futures = {k: loop.create_future() for k in items}
            for k, v in zip(items, await batch(items), strict=True):
                futures[k].set_result(v)
            await asyncio.gather(*(futures[k] for k in items))
            await asyncio.gather(*(futures[k] for k in items))

        return request_floor
    from aiodataloader import DataLoader

    async def request_peer() -> None:
        dl = DataLoader(batch, max_batch_size=max(100, keys))
        await asyncio.gather(*(dl.load(k) for k in items))
        await asyncio.gather(*(dl.load(k) for k in items))

    return request_peer


async def run(kind: str, requests: int, keys: int) -> None:
    request = make(kind, keys)
    for _ in range(requests):
        await request()


def instructions(kind: str, requests: int, keys: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                sys.executable,
                str(Path(__file__).resolve()),
                "--child",
                kind,
                "--requests",
                str(requests),
                "--keys",
                str(keys),
            ],
            check=True,
            capture_output=True,
        )
        text = subprocess.run(
            ["callgrind_annotate", str(out)], capture_output=True, text=True, check=True
        ).stdout
    match = re.search(r"^\s*([\d,]+)\s.*PROGRAM TOTALS", text, re.M)
    if match is None:
        raise RuntimeError("no totals in callgrind output")
    return int(match.group(1).replace(",", ""))


def per_load_instructions(kind: str, keys: int, n1: int, n2: int) -> float:
    a, b = instructions(kind, n1, keys), instructions(kind, n2, keys)
    return (b - a) / ((n2 - n1) * keys * 2)


def per_load_time(kinds: list[str], keys: int, rounds: int, requests: int) -> dict[str, float]:
    """Median µs per load over interleaved rounds (order rotated each round)."""
    samples: dict[str, list[float]] = {k: [] for k in kinds}
    for r in range(rounds):
        for kind in kinds[r % len(kinds) :] + kinds[: r % len(kinds)]:
            t0 = time.perf_counter()
            asyncio.run(run(kind, requests, keys))
            samples[kind].append((time.perf_counter() - t0) / (requests * keys * 2) * 1e6)
    return {k: sorted(v)[len(v) // 2] for k, v in samples.items()}


def report(values: dict[str, float]) -> None:
    floor = values["asyncio"]
    print(f"  ratio perfkit / aiodataloader: {values['perfkit'] / values['aiodataloader']:.2f}")
    over = {k: values[k] - floor for k in ("perfkit", "aiodataloader")}
    print(
        f"  over the asyncio floor: perfkit {over['perfkit']:.1f}, aiodataloader {over['aiodataloader']:.1f}"
        f" (ratio {over['perfkit'] / over['aiodataloader']:.2f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=("instructions", "time"))
    parser.add_argument("--keys", type=int, default=100, help="concurrent loads per request")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--requests", type=int, default=200, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        asyncio.run(run(args.child, args.requests, args.keys))
        return
    kinds = ["perfkit", "aiodataloader", "asyncio"]
    print(f"workload: {args.keys} concurrent loads per request (one batch), then the same keys again (hits)")
    if args.only != "time":
        if shutil.which("valgrind") is None:
            sys.exit("valgrind is not installed (apt-get install valgrind), or pass --only time")
        counts = {k: per_load_instructions(k, args.keys, 20, 80) for k in kinds}
        print("\ninstructions per load (callgrind, 80 - 20 requests)")
        for k, v in counts.items():
            print(f"  {k:14s} {v:10.0f}")
        report(counts)
    if args.only != "instructions":
        times = per_load_time(kinds, args.keys, rounds=7, requests=300)
        print("\nµs per load (median of 7 interleaved rounds of 300 requests)")
        for k, v in times.items():
            print(f"  {k:14s} {v:10.2f}")
        report(times)


if __name__ == "__main__":
    main()
