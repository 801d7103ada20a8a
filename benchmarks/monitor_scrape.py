"""A scrape with many dead workers: perfkit's store before/after compaction vs prometheus_client's
multiprocess mode with as many dead-worker files, in one run (issue 20; client_python#367).

    python benchmarks/monitor_scrape.py [--dead 1000] [--redis URL] [--rounds 5]

Each dead worker measured the same thing: 20 routes x 3 requests (latency histogram, request and query
counters) and cache hits. perfkit: the snapshots published to the store (SQLite file, Redis), scraped
with `Monitor.prometheus()` before and after `store.compact()`. prometheus_client: the same metrics
written by `MultiProcessValue` under 1,000 process ids into PROMETHEUS_MULTIPROC_DIR, scraped with
`MultiProcessCollector` + `generate_latest`. Best of `--rounds` scrapes each (wall time: the machine is
shared, the best run is the cost of the code).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def prometheus_multiproc(dead: int, rounds: int) -> float:
    folder = tempfile.mkdtemp(prefix="perfkit-bench-multiproc-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess, values

    pid = {"now": 0}
    values.ValueClass = values.MultiProcessValue(lambda: pid["now"])
    registry = CollectorRegistry()
    latency = Histogram(
        "http_request_duration_seconds", "Latency", ("method", "route", "status"), registry=registry
    )
    served = Counter("http_requests", "Requests", ("method", "route", "status"), registry=registry)
    queries = Counter("db_queries", "Queries", ("route",), registry=registry)
    cache = Counter("cache_operations", "Cache", ("namespace", "tier", "op", "outcome"), registry=registry)
    for worker in range(dead):
        pid["now"] = 100_000 + worker  # a new process id: the values reopen their files under it
        for i in range(20):
            route = f"/r{i}/{{id}}"
            for n in range(3):
                latency.labels("GET", route, "200").observe(0.001 * (n + i))
                served.labels("GET", route, "200").inc()
                queries.labels(route).inc(3)
            cache.labels("app", "l1", "get", "hit").inc(5)
    print(f"  prometheus_client: {len(os.listdir(folder))} files in PROMETHEUS_MULTIPROC_DIR", flush=True)
    scrape = CollectorRegistry()
    multiprocess.MultiProcessCollector(scrape, path=folder)
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        generate_latest(scrape)
        best = min(best, time.perf_counter() - t0)
    return best


async def perfkit_store(url: str, dead: int, rounds: int) -> tuple[float, float]:
    from tests.monitor.test_compaction import busy_collector, fill

    from perfkit.monitor import Monitor, MonitorConfig

    monitor = Monitor(MonitorConfig(url=url, token="t"), collector=busy_collector())
    try:
        await fill(monitor.store, dead)
        monitor.publisher.dead_after = 10**9
        await monitor.publisher.publish()

        async def best() -> float:
            out = float("inf")
            for _ in range(rounds):
                t0 = time.perf_counter()
                await monitor.prometheus()
                out = min(out, time.perf_counter() - t0)
            return out

        before = await best()
        await monitor.store.compact(time.time() - 600)
        return before, await best()
    finally:
        drop = getattr(monitor.store, "drop", None)
        if drop is not None:
            await drop()
        await monitor.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dead", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--redis", default=os.environ.get("PERFKIT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, url in (
            ("perfkit, SQLite store", f"sqlite:///{tmp}/monitor.db"),
            ("perfkit, Redis store", f"{args.redis}?prefix=perfkit:bench:scrape:{os.urandom(3).hex()}:"),
        ):
            before, after = asyncio.run(perfkit_store(url, args.dead, args.rounds))
            rows.append((name, before, after))
    peer = prometheus_multiproc(args.dead, args.rounds)
    print(f"\nscrape with {args.dead} dead workers + 1 live (best of {args.rounds}):")
    print(f"| {'what':<34} | {'before compaction':>17} | {'after':>9} |")
    print(f"|{'-' * 36}|{'-' * 19}|{'-' * 11}|")
    for name, before, after in rows:
        print(f"| {name:<34} | {before * 1000:>14.1f} ms | {after * 1000:>6.1f} ms |")
    print(f"| {'prometheus_client multiprocess':<34} | {peer * 1000:>14.1f} ms | {'(none)':>9} |")
    for name, _before, after in rows:
        print(f"{name}: after compaction {peer / after:.0f}x faster than prometheus_client's scrape")


if __name__ == "__main__":
    main()
