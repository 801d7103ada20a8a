"""Job queue benchmark: perfkit vs huey, Dramatiq, taskiq, SAQ, arq and RQ (SimpleWorker), one run.

Every library gets the same Redis, one worker process and the same no-op job. Per library:
  1. enqueue N jobs from this process (enqueue rate),
  2. start one worker process and time the backlog from the first job started to the N-th finished
     (processing rate, measured inside the worker),
  3. with that worker idle, enqueue jobs one by one 5 ms apart and record enqueue-to-start latency.
perfkit is also measured on SQLite and PostgreSQL. A peer that cannot run here is listed with why.

    python benchmarks/jobs.py [--jobs 10000] [--concurrency 16] [--only perfkit,arq] [--redis URL]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

REDIS_URL = os.environ.get("PERFKIT_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
POSTGRES_URL = os.environ.get("PERFKIT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
QUEUE = "pkbench"
PEERS = ["huey", "dramatiq", "taskiq", "saq", "arq", "rq"]
WINDOW = 100  # enqueues in flight in the concurrent mode (the requests an ASGI app serves at once)


def run_async(coro: Any) -> Any:
    """Run on uvloop when it is installed, for every asyncio library alike (as `perfkit worker` does)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is in the bench extra
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


# -- the job, identical for every library -----------------------------------------------------------
class Recorder:
    """Lives in the worker process: times the backlog and collects enqueue-to-start latencies."""

    def __init__(self, out: Path, n: int, lat_n: int) -> None:
        self.out, self.n, self.lat_n = out, n, lat_n
        self.count, self.first, self.latencies = 0, 0.0, []  # type: ignore[var-annotated]
        self.lock = threading.Lock()

    def hit(self, kind: str, value: float) -> None:
        now = time.time()
        with self.lock:
            if kind == "l":
                self.latencies.append(now - value)
                if len(self.latencies) == self.lat_n:
                    Path(f"{self.out}.lat").write_text(json.dumps(self.latencies))
                return
            if self.count == 0:
                self.first = time.perf_counter()
            self.count += 1
            if self.count == self.n:
                Path(f"{self.out}.proc").write_text(json.dumps(time.perf_counter() - self.first))


REC: Recorder | None = None


def hit(kind: str, value: float) -> None:
    if REC is not None:
        REC.hit(kind, value)


# -- one adapter per library: how to enqueue, and how to run a worker --------------------------------
class Adapter:
    name = ""

    async def setup(self) -> None: ...

    async def enqueue(self, kind: str, value: float) -> None: ...

    concurrent = False  # an asyncio client: measured with `WINDOW` enqueues in flight too
    bulk_api = ""  # the library's own many-jobs call, if it has one

    async def enqueue_bulk(self, kind: str, values: list[float]) -> None:
        raise NotImplementedError

    def work(self, concurrency: int) -> None: ...

    async def teardown(self) -> None: ...

    def key_patterns(self) -> list[str]:
        return []


class PerfkitAdapter(Adapter):
    def __init__(self, url: str) -> None:
        from perfkit.jobs import JobQueue

        self.url = url
        self.name = "perfkit (" + url.split(":")[0].replace("postgresql", "postgres") + ")"
        self.jobs = JobQueue(url)

        @self.jobs.task(queue=QUEUE, name="bench.noop")
        async def noop(ctx: Any, kind: str, value: float) -> None:
            hit(kind, value)

        self.task = noop

    concurrent = True
    bulk_api = "task.map"

    async def enqueue(self, kind: str, value: float) -> None:
        await self.task.enqueue(kind, value)

    async def enqueue_bulk(self, kind: str, values: list[float]) -> None:
        await self.task.map([(kind, v) for v in values])

    def work(self, concurrency: int) -> None:
        run_async(self.jobs.worker(concurrency=concurrency).run())  # as `perfkit worker` runs it

    async def teardown(self) -> None:
        drop = getattr(self.jobs.backend, "drop", None)
        if drop is not None:
            await drop()
        await self.jobs.close()


class HueyAdapter(Adapter):
    name = "huey"

    def __init__(self) -> None:
        from huey import RedisHuey

        self.huey = RedisHuey(QUEUE, url=REDIS_URL)

        @self.huey.task()
        def h_job(kind: str, value: float) -> None:
            hit(kind, value)

        self.task = h_job

    bulk_api = "task.map"

    async def enqueue(self, kind: str, value: float) -> None:
        self.task(kind, value)

    async def enqueue_bulk(self, kind: str, values: list[float]) -> None:
        self.task.map([(kind, v) for v in values])

    def work(self, concurrency: int) -> None:
        self.huey.create_consumer(workers=concurrency, worker_type="thread").run()

    def key_patterns(self) -> list[str]:
        return [f"huey*{QUEUE}*"]


class DramatiqAdapter(Adapter):
    name = "dramatiq"

    def __init__(self) -> None:
        import dramatiq
        from dramatiq.brokers.redis import RedisBroker

        self.broker = RedisBroker(url=REDIS_URL, namespace="pkbench-dramatiq")
        dramatiq.set_broker(self.broker)

        @dramatiq.actor(queue_name=QUEUE, max_retries=0)
        def d_job(kind: str, value: float) -> None:
            hit(kind, value)

        self.actor = d_job

    async def enqueue(self, kind: str, value: float) -> None:
        self.actor.send(kind, value)

    def work(self, concurrency: int) -> None:
        import dramatiq

        worker = dramatiq.Worker(self.broker, worker_threads=concurrency, worker_timeout=100)
        worker.start()
        signal.sigwait({signal.SIGTERM})
        worker.stop()

    def key_patterns(self) -> list[str]:
        return ["pkbench-dramatiq*"]


class TaskiqAdapter(Adapter):
    name = "taskiq"

    def __init__(self) -> None:
        from taskiq_redis import ListQueueBroker

        self.broker = ListQueueBroker(REDIS_URL, queue_name="pkbench-taskiq")

        @self.broker.task(task_name="t_job")
        async def t_job(kind: str, value: float) -> None:
            hit(kind, value)

        self.task = t_job

    async def setup(self) -> None:
        await self.broker.startup()

    concurrent = True

    async def enqueue(self, kind: str, value: float) -> None:
        await self.task.kiq(kind, value)

    def work(self, concurrency: int) -> None:
        from taskiq.api import run_receiver_task

        async def main() -> None:
            await self.broker.startup()
            await run_receiver_task(self.broker, max_async_tasks=concurrency)

        run_async(main())

    async def teardown(self) -> None:
        await self.broker.shutdown()

    def key_patterns(self) -> list[str]:
        return ["pkbench-taskiq*"]


class SaqAdapter(Adapter):
    name = "saq"

    def __init__(self) -> None:
        from saq import Queue

        self.queue = Queue.from_url(REDIS_URL, name="pkbench-saq")

    async def setup(self) -> None:
        await self.queue.connect()

    concurrent = True

    async def enqueue(self, kind: str, value: float) -> None:
        await self.queue.enqueue("s_job", kind=kind, value=value)

    def work(self, concurrency: int) -> None:
        from saq import Worker

        async def s_job(ctx: Any, *, kind: str, value: float) -> None:
            hit(kind, value)

        async def main() -> None:
            await self.queue.connect()
            await Worker(self.queue, functions=[("s_job", s_job)], concurrency=concurrency).start()

        run_async(main())

    async def teardown(self) -> None:
        await self.queue.disconnect()

    def key_patterns(self) -> list[str]:
        return ["saq:*pkbench-saq*", "*pkbench-saq*"]


class ArqAdapter(Adapter):
    name = "arq"

    async def setup(self) -> None:
        from arq import create_pool
        from arq.connections import RedisSettings

        self.pool = await create_pool(RedisSettings.from_dsn(REDIS_URL), default_queue_name="pkbench-arq")

    concurrent = True

    async def enqueue(self, kind: str, value: float) -> None:
        await self.pool.enqueue_job("a_job", kind, value)

    def work(self, concurrency: int) -> None:
        from arq.connections import RedisSettings
        from arq.worker import Worker, func

        async def a_job(ctx: Any, kind: str, value: float) -> None:
            hit(kind, value)

        async def main() -> None:
            worker = Worker(
                functions=[func(a_job, name="a_job")], redis_settings=RedisSettings.from_dsn(REDIS_URL),
                queue_name="pkbench-arq", max_jobs=concurrency, handle_signals=False, log_results=False,
            )  # fmt: skip
            await worker.async_run()

        run_async(main())

    async def teardown(self) -> None:
        await self.pool.aclose()

    def key_patterns(self) -> list[str]:
        return ["arq:*", "pkbench-arq*"]


class RqAdapter(Adapter):
    name = "rq (SimpleWorker)"

    def __init__(self) -> None:
        from redis import Redis
        from rq import Queue

        self.conn = Redis.from_url(REDIS_URL)
        self.queue = Queue("pkbench-rq", connection=self.conn)

    async def enqueue(self, kind: str, value: float) -> None:
        from _jobs_noop import noop  # RQ refuses functions defined in __main__

        self.queue.enqueue(noop, kind, value)

    bulk_api = "enqueue_many"

    async def enqueue_bulk(self, kind: str, values: list[float]) -> None:
        from rq import Queue

        from _jobs_noop import noop

        self.queue.enqueue_many([Queue.prepare_data(noop, (kind, v)) for v in values])

    def work(self, concurrency: int) -> None:
        from rq import SimpleWorker

        SimpleWorker([self.queue], connection=self.conn).work(logging_level="WARNING")

    def key_patterns(self) -> list[str]:
        return ["rq:*"]


def make_adapter(target: str) -> Adapter:
    if target == "perfkit":
        return PerfkitAdapter(f"{REDIS_URL}?prefix=pkbench")
    if target == "perfkit-sqlite":
        return PerfkitAdapter(f"sqlite:///{tempfile.gettempdir()}/pkbench-{os.environ['PKBENCH_ID']}.db")
    if target == "perfkit-postgres":
        return PerfkitAdapter(f"{POSTGRES_URL}?table=pk_bench_{os.environ['PKBENCH_ID']}")
    classes: dict[str, Callable[[], Adapter]] = {
        "huey": HueyAdapter, "dramatiq": DramatiqAdapter, "taskiq": TaskiqAdapter, "saq": SaqAdapter,
        "arq": ArqAdapter, "rq": RqAdapter,
    }  # fmt: skip
    return classes[target]()


# -- the driver ---------------------------------------------------------------------------------------
async def wait_file(path: Path, timeout: float, proc: subprocess.Popen[bytes]) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            with contextlib.suppress(ValueError):
                return json.loads(path.read_text())
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited with {proc.returncode}")
        await asyncio.sleep(0.05)
    raise TimeoutError(f"no result within {timeout:.0f}s")


def clean_redis(patterns: list[str]) -> None:
    if not patterns:
        return
    from redis import Redis

    conn = Redis.from_url(REDIS_URL)
    for pattern in [*patterns, "{pkbench:*"]:
        keys = list(conn.scan_iter(match=pattern, count=1000))
        for i in range(0, len(keys), 500):
            conn.delete(*keys[i : i + 500])
    conn.close()


async def measure(target: str, n: int, lat_n: int, concurrency: int) -> dict[str, Any]:
    os.environ["PKBENCH_ID"] = uuid.uuid4().hex[:8]
    out = Path(tempfile.gettempdir()) / f"pkbench-{target}-{os.environ['PKBENCH_ID']}"
    adapter = make_adapter(target)
    result: dict[str, Any] = {"name": adapter.name}
    clean_redis(adapter.key_patterns())
    await adapter.setup()
    proc = None
    try:
        start = time.perf_counter()
        for i in range(n):
            await adapter.enqueue("p", float(i))
        result["enqueue"] = n / (time.perf_counter() - start)
        cmd = [sys.executable, __file__, "--worker", target, "--out", str(out), "--jobs", str(n),
               "--latency", str(lat_n), "--concurrency", str(concurrency)]  # fmt: skip
        proc = subprocess.Popen(cmd, env=os.environ.copy())
        seconds = await wait_file(Path(f"{out}.proc"), max(120.0, n / 100), proc)
        result["process"] = (n - 1) / seconds
        await asyncio.sleep(1.0)  # let the worker go idle (and finish its acks) before the latency probe
        for _ in range(lat_n):
            await adapter.enqueue("l", time.time())
            await asyncio.sleep(0.005)
        lat = sorted(await wait_file(Path(f"{out}.lat"), 60, proc))
        result["p50"] = statistics.median(lat) * 1000
        result["p95"] = lat[int(len(lat) * 0.95) - 1] * 1000
        stop_worker(proc)
        await enqueue_modes(adapter, n, result)  # no worker runs now: these jobs are deleted unrun
    except Exception as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"[:120]
    finally:
        if proc is not None:
            stop_worker(proc)
        with contextlib.suppress(Exception):
            await adapter.teardown()
        clean_redis(adapter.key_patterns())
        for suffix in (".proc", ".lat"):
            Path(f"{out}{suffix}").unlink(missing_ok=True)
        for leftover in Path(tempfile.gettempdir()).glob(f"pkbench-{os.environ['PKBENCH_ID']}.db*"):
            leftover.unlink()
    return result


def stop_worker(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


async def enqueue_modes(adapter: Adapter, n: int, result: dict[str, Any]) -> None:
    """Enqueue rate with `WINDOW` enqueues in flight (asyncio clients) and with the bulk API (if any)."""
    if adapter.concurrent:
        window = asyncio.Semaphore(WINDOW)

        async def one(i: int) -> None:
            async with window:
                await adapter.enqueue("x", float(i))

        start = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        result["concurrent"] = n / (time.perf_counter() - start)
    if adapter.bulk_api:
        values = [float(i) for i in range(n)]
        start = time.perf_counter()
        await adapter.enqueue_bulk("x", values)
        result["bulk"] = n / (time.perf_counter() - start)
        result["bulk_api"] = adapter.bulk_api


def fmt(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def table(rows: list[dict[str, Any]], n: int, concurrency: int) -> str:
    lines = [
        f"{n:,} no-op jobs, one worker process each (concurrency {concurrency}), Redis {REDIS_URL}",
        "",
        "| library | enqueue 1-by-1 jobs/s | enqueue concurrent jobs/s | enqueue bulk jobs/s "
        "| processing jobs/s | enqueue-to-start p50 ms | p95 ms | notes |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        bulk = f"{fmt(r.get('bulk'))} ({r['bulk_api']})" if r.get("bulk") else "-"
        lines.append(
            f"| {r['name']} | {fmt(r.get('enqueue'))} | {fmt(r.get('concurrent'))} | {bulk} "
            f"| {fmt(r.get('process'))} | {fmt(r.get('p50'), 2)} | {fmt(r.get('p95'), 2)} "
            f"| {r.get('error', '')} |"
        )
    ours = next((r for r in rows if r["name"] == "perfkit (redis)"), None)
    peers = [r for r in rows if not r["name"].startswith("perfkit")]
    if ours:
        for r in [ours, *peers]:
            r["best_enqueue"] = max(r.get(k) or 0.0 for k in ("enqueue", "concurrent", "bulk"))
        lines.append("")
        modes = (
            ("enqueue", "enqueue 1-by-1 (one sequential await/call per job)"),
            ("concurrent", f"enqueue concurrent ({WINDOW} in flight; asyncio clients only)"),
            ("bulk", "enqueue bulk (each library's many-jobs API)"),
            ("best_enqueue", "enqueue, each library in its best mode"),
            ("process", "processing"),
        )
        for key, label in modes:
            best = max(peers, key=lambda r: r.get(key) or 0.0, default=None)
            if best and best.get(key) and ours.get(key):
                lines.append(
                    f"- {label}: perfkit (redis) {fmt(ours[key])}/s / best peer ({best['name']}) "
                    f"{fmt(best[key])}/s = {ours[key] / best[key]:.2f}x"
                )
        ratios = [(ours.get("p50") or 0, r["name"], r.get("p50")) for r in peers if r.get("p50")]
        if ratios:
            fastest = min(ratios, key=lambda x: x[2] or 1e9)
            lines.append(f"- enqueue-to-start p50: perfkit {fmt(ours.get('p50'), 2)} ms, best peer "
                         f"{fastest[1]} {fmt(fastest[2], 2)} ms")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--latency", type=int, default=200, help="latency samples")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--only", help="comma-separated targets: perfkit,perfkit-sqlite,perfkit-postgres," + ",".join(PEERS)
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        global REC
        REC = Recorder(Path(args.out), args.jobs, args.latency)
        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))  # the bench is done with this worker
        make_adapter(args.worker).work(args.concurrency)
        return
    targets = args.only.split(",") if args.only else ["perfkit", *PEERS, "perfkit-sqlite", "perfkit-postgres"]
    rows = []
    for target in targets:
        print(f"... {target}", file=sys.stderr, flush=True)
        rows.append(run_async(measure(target, args.jobs, args.latency, args.concurrency)))
    print(table(rows, args.jobs, args.concurrency))


if __name__ == "__main__":
    main()
