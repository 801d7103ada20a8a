"""OpenTelemetry cost: perfkit.otel vs opentelemetry-instrumentation-asgi + -sqlalchemy, in one run.

    .venv-bench/bin/python benchmarks/otel.py [--requests 3000] [--rounds 7] [--instructions]

Every variant serves the same Starlette route (`GET /items/{id}`, one SQL SELECT on SQLite in memory),
called in-process as an ASGI app (no network), each with an engine of its own:
  - bare: the app alone; contrib-nosdk / contrib: + contrib's OpenTelemetryMiddleware and
    SQLAlchemyInstrumentor, without an SDK / with the SDK;
  - perfkit: the app under perfkit.instrument() (otel off); perfkit-nosdk: otel=True and no SDK
    registered; perfkit-sdk: otel=True with the SDK.
"The SDK" is the same for both sides: a TracerProvider with a SimpleSpanProcessor into an
InMemorySpanExporter (cleared between rounds) and a MeterProvider with an InMemoryMetricReader.
Added cost: contrib vs bare, perfkit-* vs perfkit (what turning OTel on adds to each stack).
Each variant runs in a process of its own (contrib patches SQLAlchemy process-wide).
Timing is CPU time per request (`time.process_time`), the best of interleaved rounds; `--instructions`
also counts instructions per request under callgrind (the difference between two request counts, so
start-up cancels out; see benchmarks/web_instructions.py), which the shared machine's load cannot move.
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
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.pool import StaticPool
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

VARIANTS = ("bare", "contrib-nosdk", "contrib", "perfkit", "perfkit-nosdk", "perfkit-sdk")
_SDK: dict[str, Any] = {}


def sdk() -> dict[str, Any]:
    """One SDK for every variant that uses one (built on first use, never registered globally)."""
    if not _SDK:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        exporter = InMemorySpanExporter()
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
        reader = InMemoryMetricReader()
        _SDK.update(
            exporter=exporter, reader=reader, tracer_provider=tracer_provider,
            meter_provider=MeterProvider(metric_readers=[reader]),
        )  # fmt: skip
    return _SDK


def build(variant: str) -> Any:
    engine = create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)"))
        conn.execute(text("INSERT INTO items VALUES (1, 'one')"))

    async def item(request: Request) -> JSONResponse:
        with engine.connect() as conn:
            row = conn.execute(text("SELECT name FROM items WHERE id = :id"), {"id": 1}).one()
        return JSONResponse({"name": row[0]})

    app: Any = Starlette(routes=[Route("/items/{id}", item)])
    if variant.startswith("contrib"):
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
        from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

        providers = {}
        if variant == "contrib":
            providers = {
                "tracer_provider": sdk()["tracer_provider"],
                "meter_provider": sdk()["meter_provider"],
            }
        # skip_dep_check: contrib 0.66b2 declares sqlalchemy < 2.1 and would not instrument 2.1 otherwise.
        SQLAlchemyInstrumentor().instrument(engine=engine, skip_dep_check=True, **providers)
        app = OpenTelemetryMiddleware(app, **providers)
    elif variant.startswith("perfkit"):
        import perfkit
        from perfkit.metrics import Collector
        from perfkit.otel import OtelConfig

        otel: Any = False
        if variant == "perfkit-nosdk":
            otel = True
        elif variant == "perfkit-sdk":
            otel = OtelConfig(
                tracer_provider=sdk()["tracer_provider"], meter_provider=sdk()["meter_provider"]
            )
        app = perfkit.instrument(app, engine=engine, collector=Collector(), monitor=False, otel=otel)
    return app


async def run_requests(app: Any, n: int) -> float:
    """CPU seconds per request over `n` requests (after a warm-up)."""
    base = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
        "path": "/items/1", "raw_path": b"/items/1", "root_path": "", "query_string": b"",
        "headers": [(b"host", b"bench"), (b"user-agent", b"bench")], "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }  # fmt: skip

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        return None

    for _ in range(100):
        await app(dict(base), receive, send)
    start = time.process_time()
    for _ in range(n):
        await app(dict(base), receive, send)
    return (time.process_time() - start) / n


def hooks_without_sdk(n: int) -> float:
    """CPU seconds of what perfkit.otel adds to one such request without an SDK, called alone `n` times:
    the pipeline's tracer `start` (None: nothing to end) and the statement listener. The whole-request
    difference (perfkit-nosdk - perfkit) is below what two processes' hash seeds and layouts move."""
    from perfkit.otel import OpenTelemetry

    otel = OpenTelemetry()
    scope = {"type": "http", "method": "GET", "path": "/items/1", "headers": [], "http_version": "1.1"}
    start, end, statement = otel.requests.start, otel.requests.end, otel.statements.statement
    began = time.process_time()
    for _ in range(n):
        traced = start(scope, "/items/{id}")
        if traced is not None:
            end(traced, scope, 200, 0.001)
        statement("sqlite", "SELECT name FROM items WHERE id = ?", False, 0.0001)
    return (time.process_time() - began) / n


def timed(n: int, rounds: int) -> dict[str, float]:
    """µs per request per variant, each variant in a process of its own (contrib's SQLAlchemy
    instrumentor patches `Engine.connect` and `create_engine` process-wide: in one process it would
    trace every variant's engine), rounds interleaved, best kept (the machine is shared and noisy)."""
    best = dict.fromkeys(VARIANTS, float("inf"))
    for _ in range(rounds):
        for v in VARIANTS:
            out = subprocess.run(
                [sys.executable, __file__, "--child", v, "--requests", str(n)],
                capture_output=True, text=True, check=True,
            ).stdout  # fmt: skip
            best[v] = min(best[v], float(out.split()[-1]))
    return best


def child(variant: str, n: int) -> None:
    """One variant, in this process: print its CPU µs per request (best of three runs of `n`)."""
    app = build(variant)
    times = []
    for _ in range(3):
        times.append(asyncio.run(run_requests(app, n)) * 1e6)
        if _SDK:
            _SDK["exporter"].clear()
    print(min(times))


_CHILD = """
import asyncio, sys
sys.path.insert(0, {here!r})
import otel
if {variant!r} == "hooks":
    otel.hooks_without_sdk({n} * 20)
else:
    asyncio.run(otel.run_requests(otel.build({variant!r}), {n}))
"""


def _total(out: Path) -> int:
    report = subprocess.run(["callgrind_annotate", str(out)], capture_output=True, text=True, check=True)
    found = re.search(r"^\s*([\d,]+)\s.*PROGRAM TOTALS", report.stdout, re.M)
    if found is None:
        raise RuntimeError(f"no totals in {out}")
    return int(found.group(1).replace(",", ""))


def instructions(low: int = 300, high: int = 1300, variants: tuple[str, ...] = VARIANTS) -> dict[str, float]:
    """Instructions per request per variant (callgrind, two request counts, the difference); "hooks":
    per `hooks_without_sdk` iteration."""
    here = str(Path(__file__).resolve().parent)
    counts = {}
    with tempfile.TemporaryDirectory() as tmp:
        for v in variants:
            totals = []
            for n in (low, high):
                out = Path(tmp) / f"{v}.{n}"
                script = _CHILD.format(here=here, variant=v, n=n)
                command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable]
                subprocess.run([*command, "-c", script], capture_output=True, check=True)
                totals.append(_total(out))
            counts[v] = (totals[1] - totals[0]) / (high - low) / (20 if v == "hooks" else 1)
    return counts


def table(per_request: dict[str, float], unit: str, digits: int) -> None:
    added = {
        "contrib-nosdk": per_request["contrib-nosdk"] - per_request["bare"],
        "contrib": per_request["contrib"] - per_request["bare"],
        "perfkit-nosdk": per_request["perfkit-nosdk"] - per_request["perfkit"],
        "perfkit-sdk": per_request["perfkit-sdk"] - per_request["perfkit"],
    }
    print(f"  {'variant':15s} {'per request':>13s} {'added by OTel':>14s}")
    for v in VARIANTS:
        extra = f"{added[v]:+14.{digits}f}" if v in added else f"{'':14s}"
        print(f"  {v:15s} {per_request[v]:13.{digits}f} {extra}   ({unit})")
    ratio = added["perfkit-sdk"] / added["contrib"] if added["contrib"] else float("nan")
    print(f"  with the SDK, perfkit adds {ratio:.2f}x what contrib adds ({1 / ratio:.1f}x less)")
    if added["contrib-nosdk"]:
        ratio = added["perfkit-nosdk"] / added["contrib-nosdk"]
        print(f"  without an SDK, perfkit adds {ratio:.2f}x what contrib adds")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--instructions", action="store_true", help="also count instructions (callgrind)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--hooks-only", action="store_true", help="only the no-SDK hooks measurement")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.requests)
        return
    import opentelemetry.sdk.version as sdk_version

    print(f"python {sys.version.split()[0]}, opentelemetry-sdk {sdk_version.__version__}")
    hooks = min(hooks_without_sdk(200_000) for _ in range(3)) * 1e6
    print(
        f"perfkit.otel's hooks alone, no SDK (tracer start + statement listener): {hooks:.3f} µs per request"
    )
    if args.hooks_only:
        if args.instructions:
            print(f"  {instructions(variants=('hooks',))['hooks']:.0f} instructions per request (callgrind)")
        return
    print(f"CPU time per request, µs (best of {args.rounds} interleaved rounds of 3 x {args.requests}):")
    table(timed(args.requests, args.rounds), "µs", 2)
    if args.instructions:
        if shutil.which("valgrind") is None or shutil.which("callgrind_annotate") is None:
            raise SystemExit("--instructions needs valgrind (apt-get install valgrind)")
        print("instructions per request (callgrind):")
        table(instructions(), "instructions", 0)


if __name__ == "__main__":
    main()
