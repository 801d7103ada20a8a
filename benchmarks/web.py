"""Web-layer benchmark: perfkit's stack vs bare Starlette and the peer libraries, in one run.

    python benchmarks/web.py [--duration 3] [--rounds 2] [--connections 32]

1. Throughput under uvicorn on 127.0.0.1 driven by `wrk` (bounded: one thread, a few seconds each):
   hello-world and a ~4 KB JSON endpoint; bare Starlette, perfkit's full stack (timing + metrics +
   ETag + rate limit + compression), prometheus-fastapi-instrumentator, starlette-exporter; and
   compression of the 4 KB body: perfkit gzip/br vs Starlette GZipMiddleware (default level 9) and
   brotli-asgi. Each variant runs in its own uvicorn process; the two sides of a ratio are loaded at the
   same time (the shared machine's load drifts) and the ratio is the median over rounds.
2. Microseconds added per request, calling the ASGI app in-process (no network).
3. Microseconds added per SQL query by perfkit's SQLAlchemy instrumentation (SQLite in memory).
In-process figures are CPU time (`time.process_time`), so time the shared machine gives to other
processes is not counted; each is the best of several interleaved rounds.
Ratios are printed against the peers measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

random.seed(7)
WORDS = ["open", "closed", "pending", "alpha", "beta", "gamma", "support", "billing", "urgent", "low"]
PAYLOAD = [
    {
        "id": 1000 + i,
        "title": " ".join(random.choice(WORDS) for _ in range(4)),
        "status": random.choice(WORDS[:3]),
        "priority": random.randint(1, 5),
        "assignee": {"id": random.randint(1, 50), "name": f"user{random.randint(1, 50)}"},
        "tags": random.sample(WORDS, 2),
        "created_at": f"2026-11-{random.randint(1, 28):02d}T{random.randint(0, 23):02d}:00:00Z",
    }
    for i in range(20)
]
BODY_4K = json.dumps(PAYLOAD).encode()


def base_app() -> Starlette:
    async def hello(request: Request) -> Response:
        return PlainTextResponse("Hello, world!")

    async def data(request: Request) -> Response:
        return Response(BODY_4K, media_type="application/json")

    async def js(request: Request) -> Response:
        return JSONResponse(PAYLOAD)

    return Starlette(routes=[Route("/", hello), Route("/json", data), Route("/json2", js)])


def build(variant: str) -> Any:
    """A variant by name; `<variant>+nomonitor` is the same stack without the /perf monitor mount."""
    if variant.endswith("+nomonitor"):
        import perfkit

        real, perfkit.instrument = perfkit.instrument, functools.partial(perfkit.instrument, monitor=False)
        try:
            return build(variant.removesuffix("+nomonitor"))
        finally:
            perfkit.instrument = real
    app = base_app()
    if variant == "bare":
        return app
    if variant == "bare-headers":  # bare plus five response headers like perfkit's (their cost in uvicorn)
        return _HeadersOnly(app)
    if variant == "perfkit":
        import perfkit
        from perfkit.web import WebConfig

        return perfkit.instrument(app, config=WebConfig(rate_limit="1000000/second", slow_request=10))
    if variant == "perfkit-core":  # timing + metrics + ETag + rate limit, no compression
        import perfkit
        from perfkit.web import WebConfig

        return perfkit.instrument(app, config=WebConfig(rate_limit="1000000/second", compress=False))
    if variant == "perfkit-timing":  # timing + metrics only (for breakdowns)
        import perfkit
        from perfkit.web import WebConfig

        return perfkit.instrument(app, config=WebConfig(compress=False, etag=False))
    if variant == "perfkit-no-etag":  # timing + metrics + rate limit
        import perfkit
        from perfkit.web import WebConfig

        return perfkit.instrument(
            app, config=WebConfig(rate_limit="1000000/second", compress=False, etag=False)
        )
    if variant == "instrumentator":
        from prometheus_fastapi_instrumentator import Instrumentator

        Instrumentator().instrument(app)
        return app
    if variant == "starlette-exporter":
        from starlette_exporter import PrometheusMiddleware

        app.add_middleware(PrometheusMiddleware)
        return app
    if variant == "perfkit-gzip":
        from perfkit.web import CompressionMiddleware

        app.add_middleware(CompressionMiddleware)
        return app
    if variant == "starlette-gzip":
        from starlette.middleware.gzip import GZipMiddleware

        app.add_middleware(GZipMiddleware)
        return app
    if variant == "brotli-asgi":
        from brotli_asgi import BrotliMiddleware

        app.add_middleware(BrotliMiddleware)
        return app
    raise SystemExit(f"unknown variant {variant}")


class _HeadersOnly:
    extra = [
        (b"x-request-id", b"5f2c9a1b7e3d-1a2b"),
        (b"server-timing", b'total;dur=0.05, app;dur=0.05, db;dur=0.00;desc="0 queries", cache;dur=0.000'),
        (b"ratelimit-policy", b'"/";q=1000000;w=1'),
        (b"ratelimit", b'"/";r=999999;t=1'),
        (b"etag", b'"943a702d06f34599aee1f8da8ef9f7296031d69"'),
    ]

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def send_more(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message["headers"], *self.extra]}
            await send(message)

        await self.app(scope, receive, send_more)


def serve(variant: str, port: int, cpu: int | None = None) -> None:
    import uvicorn

    if cpu is not None:  # --pin: the server on one core, wrk on the other
        os.sched_setaffinity(0, {cpu})

    uvicorn.run(
        build(variant), host="127.0.0.1", port=port, log_level="error", access_log=False, lifespan="off"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 20) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server on {port} did not start")


def wrk_cmd(
    port: int, path: str, headers: dict[str, str], duration: float, connections: int, cpu: int | None = None
) -> list[str]:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s"]
    if cpu is not None:
        cmd = ["taskset", "-c", str(cpu), *cmd]
    for k, v in headers.items():
        cmd += ["-H", f"{k}: {v}"]
    return [*cmd, f"http://127.0.0.1:{port}{path}"]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def parse_count(out: str) -> int:
    match = re.search(r"(\d+) requests in", out)
    return int(match.group(1)) if match else 0


def parse_wrk(out: str) -> float:
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"{errors.group(1)} error responses:\n{out}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    return float(match.group(1)) if match else 0.0


Case = tuple[str, str, dict[str, str]]  # variant, path, request headers


CPU_US: dict[str, list[float]] = {}  # --pin: server CPU us per request, per variant and path


def pinned(a: Case, b: Case, args: argparse.Namespace) -> list[tuple[float, float]]:
    """--pin: one server at a time on core 0, one wrk on core 1, the two sides alternating (A B, B A, ...)
    round by round so both see the same drift; nothing else of ours runs during a measurement."""
    ports = [free_port(), free_port()]
    procs = [
        subprocess.Popen([sys.executable, __file__, "--serve", case[0], "--port", str(port), "--cpu", "0"])
        for case, port in zip((a, b), ports, strict=True)
    ]
    try:
        for port, case in zip(ports, (a, b), strict=True):
            wait_port(port)
            subprocess.run(
                wrk_cmd(port, case[1], case[2], 1, 4, 1), capture_output=True, check=True
            )  # warm-up
        results = []
        for i in range(args.rounds):
            order = (0, 1) if i % 2 == 0 else (1, 0)
            rates = [0.0, 0.0]
            for side in order:
                case, port = (a, b)[side], ports[side]
                cpu0 = cpu_seconds(procs[side].pid)
                out = subprocess.run(
                    wrk_cmd(port, case[1], case[2], args.duration, args.connections, 1),
                    capture_output=True, text=True, check=True,
                ).stdout  # fmt: skip
                cpu = cpu_seconds(procs[side].pid) - cpu0
                rates[side] = parse_wrk(out)
                key = f"{case[0]} {case[1]} {case[2].get('accept-encoding', '')}".strip()
                CPU_US.setdefault(key, []).append(cpu / max(1, parse_count(out)) * 1e6)
            results.append((rates[0], rates[1]))
        return results
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=10)


def paired(a: Case, b: Case, args: argparse.Namespace) -> list[tuple[float, float]]:
    """Load two servers at the same time, one wrk each, `rounds` times: both sides of the ratio see the
    same background load on this shared machine (sequential runs drifted by 2x between variants)."""
    ports = [free_port(), free_port()]
    procs = [
        subprocess.Popen([sys.executable, __file__, "--serve", case[0], "--port", str(port)])
        for case, port in zip((a, b), ports, strict=True)
    ]
    try:
        for port, case in zip(ports, (a, b), strict=True):
            wait_port(port)
            subprocess.run(wrk_cmd(port, case[1], case[2], 1, 4), capture_output=True, check=True)  # warm-up
        results = []
        for _ in range(args.rounds):
            loads = [
                subprocess.Popen(
                    wrk_cmd(port, case[1], case[2], args.duration, args.connections),
                    stdout=subprocess.PIPE, text=True,
                )
                for port, case in zip(ports, (a, b), strict=True)
            ]  # fmt: skip
            outs = [proc.communicate()[0] for proc in loads]
            results.append((parse_wrk(outs[0]), parse_wrk(outs[1])))
        return results
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=10)


# -- in-process ---------------------------------------------------------------------------------------


async def per_request_us(
    app: Any, path: str, n: int, headers: list[tuple[bytes, bytes]] | None = None
) -> float:
    scope_base = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
        "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
        "headers": [(b"host", b"bench"), *(headers or [])], "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }  # fmt: skip

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        return None

    for _ in range(200):
        await app(dict(scope_base), receive, send)
    start = time.process_time()
    for _ in range(n):
        await app(dict(scope_base), receive, send)
    return (time.process_time() - start) / n * 1e6


def in_process(n: int, rounds: int = 7) -> dict[str, float]:
    """Variants interleaved round by round, best round kept: the machine is shared, noise is high."""
    variants = ("bare", "perfkit-core", "perfkit", "instrumentator", "starlette-exporter")
    apps = {v: build(v) for v in variants}
    results = dict.fromkeys(variants, float("inf"))
    for _ in range(rounds):
        for v in variants:
            results[v] = min(results[v], asyncio.run(per_request_us(apps[v], "/", n)))
    return results


def in_process_compression(n: int, rounds: int = 5) -> dict[str, float]:
    """us per request for the 4 KB JSON endpoint with each compressor, called in-process."""
    cases = {
        "bare (identity)": ("bare", b"gzip"),
        "perfkit gzip": ("perfkit-gzip", b"gzip"),
        "starlette GZip": ("starlette-gzip", b"gzip"),
        "perfkit br": ("perfkit-gzip", b"br"),
        "brotli-asgi br": ("brotli-asgi", b"br"),
    }
    apps = {name: build(variant) for name, (variant, _) in cases.items()}
    results = dict.fromkeys(cases, float("inf"))
    for _ in range(rounds):
        for name, (_, accept) in cases.items():
            us = asyncio.run(per_request_us(apps[name], "/json", n, [(b"accept-encoding", accept)]))
            results[name] = min(results[name], us)
    return results


def compressed_sizes() -> dict[str, int]:
    out: dict[str, int] = {}
    for variant, accept in (
        ("perfkit-gzip", "gzip"), ("starlette-gzip", "gzip"), ("perfkit-gzip", "br"), ("brotli-asgi", "br"),
        ("perfkit-gzip", "zstd"),
    ):  # fmt: skip
        body = bytearray()

        async def send(message: dict[str, Any], body: bytearray = body) -> None:
            if message["type"] == "http.response.body":
                body.extend(message.get("body", b""))

        async def run(app: Any, accept: str = accept, send: Any = send) -> None:
            scope = {"type": "http", "method": "GET", "path": "/json", "root_path": "", "query_string": b"",
                     "headers": [(b"accept-encoding", accept.encode())], "http_version": "1.1"}  # fmt: skip

            async def receive() -> dict[str, Any]:
                return {"type": "http.request", "body": b""}

            await app(scope, receive, send)

        asyncio.run(run(build(variant)))
        out[f"{variant} ({accept})"] = len(body)
    return out


def sql_us(n: int) -> dict[str, float]:
    from sqlalchemy import create_engine, text

    from perfkit.db import instrument_engine, track, uninstrument_engine
    from perfkit.metrics import Collector

    bare_engine, engine = create_engine("sqlite://"), create_engine("sqlite://")
    instrument_engine(engine, collector=Collector())
    stmt = text("SELECT 1")

    def run(e: Any) -> float:
        with e.connect() as conn:
            start = time.process_time()
            for _ in range(n):
                conn.execute(stmt)
            return (time.process_time() - start) / n * 1e6

    bare = instrumented = float("inf")
    with track("/bench"):  # as inside a request: per-request accounting is on
        for _ in range(7):  # interleaved, best round kept
            bare = min(bare, run(bare_engine))
            instrumented = min(instrumented, run(engine))
    uninstrument_engine(engine)
    return {"bare": bare, "instrumented": instrumented}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve")
    parser.add_argument("--port", type=int)
    parser.add_argument("--duration", type=float, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--cpu", type=int)
    parser.add_argument("--pin", action="store_true", help="server on core 0, wrk on core 1, sides in turn")
    parser.add_argument("--only", help="comma-separated substrings: run only the throughput rows matching")
    parser.add_argument("--no-inprocess", action="store_true")
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.cpu)
        return

    print(f"web benchmark: python {sys.version.split()[0]}, {os.cpu_count()} cores, body {len(BODY_4K)} B")
    extra: list[tuple[str, float, str]] = []
    if not args.no_inprocess:
        extra = report_in_process(args)
    if shutil.which("wrk") is None:
        print("\n`wrk` not found (apt-get install wrk): throughput part skipped")
        return
    gzip, br = {"accept-encoding": "gzip"}, {"accept-encoding": "br"}
    browser = {"accept-encoding": "gzip, deflate, br, zstd"}
    pairs: list[tuple[str, Case, Case, str]] = [
        ("timing+metrics+ETag+rate limit / bare, hello",
         ("perfkit-core", "/", {}), ("bare", "/", {}), ">= 0.8"),
        ("  of which timing+metrics / bare, hello", ("perfkit-timing", "/", {}), ("bare", "/", {}), ""),
        ("  of which +rate limit / bare, hello", ("perfkit-no-etag", "/", {}), ("bare", "/", {}), ""),
        ("full stack incl. compression / bare, hello", ("perfkit", "/", {}), ("bare", "/", {}), ""),
        ("instrumentator / bare, hello", ("instrumentator", "/", {}), ("bare", "/", {}), ""),
        ("starlette-exporter / bare, hello", ("starlette-exporter", "/", {}), ("bare", "/", {}), ""),
        ("perfkit core / instrumentator, hello", ("perfkit-core", "/", {}), ("instrumentator", "/", {}), ""),
        ("perfkit core / starlette-exporter, hello",
         ("perfkit-core", "/", {}), ("starlette-exporter", "/", {}), ""),
        ("perfkit gzip / Starlette GZip, 4 KB",
         ("perfkit-gzip", "/json", gzip), ("starlette-gzip", "/json", gzip), ">= 1.5"),
        ("perfkit (zstd) / Starlette GZip, 4 KB, browser A-E",
         ("perfkit-gzip", "/json", browser), ("starlette-gzip", "/json", browser), ""),
        ("perfkit br / brotli-asgi, 4 KB", ("perfkit-gzip", "/json", br), ("brotli-asgi", "/json", br), ""),
    ]  # fmt: skip
    if args.only:
        wanted = args.only.split(",")
        pairs = [p for p in pairs if any(w in p[0] for w in wanted)]
    how = (
        "one side at a time, server pinned to core 0 and wrk to core 1, sides alternating"
        if args.pin
        else "the two sides of each row loaded at the same time"
    )
    print(
        f"\nThroughput under uvicorn, {how} "
        f"(wrk -t1 -c{args.connections} -d{args.duration:g}s each, {args.rounds} rounds; req/s medians)"
    )
    rows = []
    for name, a, b, target in pairs:
        results = (pinned if args.pin else paired)(a, b, args)
        ratios = [x / y for x, y in results]
        ra, rb = statistics.median(x for x, _ in results), statistics.median(y for _, y in results)
        runs = " ".join(f"{r:.2f}" for r in ratios)
        print(f"  {name:50s} {ra:8.0f} vs {rb:8.0f} req/s   rounds: {runs}")
        spread = f"(rounds {min(ratios):.2f}-{max(ratios):.2f})"
        rows.append((name, statistics.median(ratios), f"{target} {spread}".strip()))
    if CPU_US:
        print("\nServer CPU per request under load (us, user+system of the uvicorn process; median of runs)")
        for key, values in CPU_US.items():
            runs = " ".join(f"{v:.1f}" for v in values)
            print(f"  {key:50s} {statistics.median(values):7.1f} us   runs: {runs}")
    print("\nRatios (same run)")
    for name, value, target in [*rows, *extra]:
        print(f"  {name:50s} {value:6.2f}x  {target}")


def report_in_process(args: argparse.Namespace) -> list[tuple[str, float, str]]:
    """Print the in-process tables; returns their ratio rows for the summary."""
    us = in_process(args.n // 4)
    sizes = compressed_sizes()
    packing = in_process_compression(args.n // 10)
    sql = sql_us(args.n // 4)
    print("\nIn-process, hello-world, us per request (lower is better)")
    for k, v in us.items():
        print(f"  {k:22s} {v:7.2f} us   (+{v - us['bare']:.2f} us over bare)")
    print("\nIn-process, 4 KB JSON endpoint with compression, us per request")
    for k, v in packing.items():
        print(f"  {k:22s} {v:7.2f} us")
    print(
        f"  perfkit gzip / Starlette GZip speed: {packing['starlette GZip'] / packing['perfkit gzip']:.2f}x, "
        f"perfkit br / brotli-asgi: {packing['brotli-asgi br'] / packing['perfkit br']:.2f}x"
    )
    print("\nCompressed size of the 4 KB JSON body")
    for k, v in sizes.items():
        print(f"  {k:26s} {v:6d} B")
    added, sql_added = us["perfkit-core"] - us["bare"], sql["instrumented"] - sql["bare"]
    sql_line = f"{sql['bare']:.2f} -> {sql['instrumented']:.2f} us per query (+{sql_added:.2f} us)"
    print(f"\nSQL instrumentation: {sql_line}")
    full = us["perfkit"] - us["bare"]
    print(f"us added in-process: timing+metrics+ETag+rate limit {added:.2f} (<= 10), "
          f"full stack incl. compression {full:.2f}, per SQL query {sql_added:.2f} (<= 10)")  # fmt: skip
    return [
        ("perfkit gzip size / Starlette GZip size",
         sizes["perfkit-gzip (gzip)"] / sizes["starlette-gzip (gzip)"], "<= 1.05"),
        ("perfkit br size / brotli-asgi size", sizes["perfkit-gzip (br)"] / sizes["brotli-asgi (br)"], ""),
        ("perfkit gzip / Starlette GZip, in-process",
         packing["starlette GZip"] / packing["perfkit gzip"], ""),
    ]  # fmt: skip


if __name__ == "__main__":
    main()
