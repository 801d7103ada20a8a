"""The RUM collector's cost per beacon: `POST /perf/rum` called in-process (the ASGI app, no server).

    python benchmarks/rum.py [--beacons 20000] [--rounds 5]
    python benchmarks/rum.py --callgrind          # instructions per beacon (valgrind; noise-free)

A beacon is what the snippet sends for one page view: five metrics (LCP, INP, CLS with targets, FCP,
TTFB with its server time), each with a new id, from one of 50 client addresses. Measured:
  - perfkit: the monitor app's whole path (origin check, GCRA rate limit, body read, msgspec schema,
    route template from the app's router, the pending table, settle flush into the histograms);
  - naive: `json.loads` + hand-written checks + one histogram observation per metric, the collector
    one would write without perfkit (no rate limit, no dedup, no route resolution): the floor.
Reported: CPU microseconds per beacon (median over rounds) and, with --callgrind, instructions per
beacon from the difference of two beacon counts (start-up cancels out), less the instructions of
building the test bodies. The budget is 50 us per beacon.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import perfkit
from perfkit.metrics import Collector
from perfkit.monitor import MonitorConfig, RumConfig

HERE = Path(__file__).resolve()
NAMES = ("LCP", "INP", "CLS", "FCP", "TTFB")


def beacon(i: int) -> bytes:
    ids = [f"v5-{i}-{k}" for k in range(5)]
    return json.dumps({
        "url": f"/products/{i % 97}", "device": "mobile" if i % 3 else "desktop",
        "metrics": [
            {"name": "LCP", "id": ids[0], "value": 2100.5, "delta": 2100.5, "target": "main>img.hero"},
            {"name": "INP", "id": ids[1], "value": 180.0, "delta": 180.0, "target": "button#buy"},
            {"name": "CLS", "id": ids[2], "value": 0.04, "delta": 0.04, "target": "div.banner"},
            {"name": "FCP", "id": ids[3], "value": 900.0, "delta": 900.0},
            {"name": "TTFB", "id": ids[4], "value": 240.0, "delta": 240.0, "server": 120.0},
        ],
    }).encode()  # fmt: skip


def perfkit_app() -> Any:
    async def page(request: Any) -> PlainTextResponse:
        return PlainTextResponse("x")

    app = Starlette(routes=[Route("/", page), Route("/products/{id}", page)])
    rum = RumConfig(settle=0.0, rate_limit="1000000/second")
    return perfkit.instrument(app, monitor=MonitorConfig(url="memory://", rum=rum), collector=Collector())


async def call(app: Any, body: bytes, client: str) -> int:
    scope = {
        "type": "http", "method": "POST", "path": "/perf/rum", "raw_path": b"/perf/rum", "query_string": b"",
        "root_path": "", "scheme": "http", "http_version": "1.1", "client": (client, 5000),
        "server": ("shop.test", 80),
        "headers": [(b"host", b"shop.test"), (b"origin", b"http://shop.test"),
                    (b"content-type", b"text/plain;charset=UTF-8"), (b"content-length", b"%d" % len(body))],
    }  # fmt: skip
    status = [0]
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status[0] = message["status"]

    await app(scope, receive, send)
    return status[0]


def naive_collector() -> Any:
    hist = Collector().histogram("naive_seconds", ("name", "route", "device"), "", (0.1, 0.5, 1.0, 2.5, 4.0))

    def take(body: bytes) -> int:
        data = json.loads(body)
        if not isinstance(data, dict) or not isinstance(data.get("metrics"), list) or len(body) > 65536:
            return 400
        for m in data["metrics"]:
            if m.get("name") not in NAMES or not isinstance(m.get("value"), float):
                return 400
            hist.observe((m["name"], data["url"], data.get("device", "desktop")), m["value"] / 1000)
        return 204

    return take


async def run_perfkit(n: int, offset: int = 0) -> float:
    app = perfkit_app()
    bodies = [beacon(offset + i) for i in range(n)]
    clients = [f"10.0.0.{i}" for i in range(50)]
    start = time.process_time()  # CPU time: less inflated than wall time when the machine is shared
    for i, body in enumerate(bodies):
        if await call(app, body, clients[i % 50]) != 204:
            raise RuntimeError("beacon refused")
    return (time.process_time() - start) / n * 1e6


def run_naive(n: int) -> float:
    take = naive_collector()
    bodies = [beacon(i) for i in range(n)]
    start = time.process_time()
    for body in bodies:
        if take(body) != 204:
            raise RuntimeError("beacon refused")
    return (time.process_time() - start) / n * 1e6


def run_bodies(n: int) -> float:
    """Only what the two runs above do besides taking beacons (building the bodies): subtracted."""
    return float(len([beacon(i) for i in range(n)]))


def instructions(kind: str, n: int, work: Path) -> int:
    out = work / f"cg.{kind}.{n}"
    code = f"import asyncio, sys; sys.path.insert(0, {str(HERE.parent)!r}); import rum; "
    code += f"asyncio.run(rum.run_perfkit({n}))" if kind == "perfkit" else f"rum.run_{kind}({n})"
    subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, "-c", code],
        check=True, capture_output=True,
    )  # fmt: skip
    text = subprocess.run(["callgrind_annotate", str(out)], capture_output=True, text=True, check=True).stdout
    match = re.search(r"^\s*([\d,]+)\s.*PROGRAM TOTALS", text, re.M)
    if match is None:
        raise RuntimeError("no callgrind totals")
    return int(match.group(1).replace(",", ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--beacons", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--callgrind", action="store_true")
    args = parser.parse_args()
    if args.callgrind:
        if shutil.which("valgrind") is None:
            raise SystemExit("needs valgrind (apt-get install -y valgrind)")
        low, high = 1000, 3000
        per: dict[str, float] = {}
        with tempfile.TemporaryDirectory() as tmp:
            for kind in ("bodies", "perfkit", "naive"):
                more, less = instructions(kind, high, Path(tmp)), instructions(kind, low, Path(tmp))
                per[kind] = (more - less) / (high - low)
        for kind in ("perfkit", "naive"):
            print(f"{kind:8} {per[kind] - per['bodies']:12,.0f} instructions / beacon")
        print(f"ratio    {(per['perfkit'] - per['bodies']) / (per['naive'] - per['bodies']):12.2f}x")
        return
    ours, floor = [], []
    for _ in range(args.rounds):  # interleaved rounds: the machine's noise hits both alike
        ours.append(asyncio.run(run_perfkit(args.beacons)))
        floor.append(run_naive(args.beacons))
    a, b = statistics.median(ours), statistics.median(floor)
    print(f"perfkit  {a:7.1f} us CPU / beacon  (5 metrics; budget 50 us)")
    print(f"naive    {b:7.1f} us CPU / beacon  (json.loads + checks + observe: the floor)")
    print(f"ratio    {a / b:7.2f}x")


if __name__ == "__main__":
    main()
