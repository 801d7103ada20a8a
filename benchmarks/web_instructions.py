"""Instructions per request, counted by callgrind: where the web stack's cost goes, without the noise.

    python benchmarks/web_instructions.py [--variants bare,bare-headers,perfkit-core] [--seconds 15]
    python benchmarks/web_instructions.py --variants bare,starlette-gzip,perfkit-gzip --path /json --gzip

Wall-clock and CPU-time figures on this shared 2-core VM move by +-30 % between runs; instruction
counts do not (the same binary and inputs give the same count whatever else the machine does). For
each `benchmarks/web.py` variant (the same apps as there) this prints:
  - under uvicorn: the server run under `valgrind --tool=callgrind`, counters zeroed after a warm-up,
    loaded by `wrk` for `--seconds`, then dumped: instructions / requests served;
  - in-process: the ASGI app called directly (`benchmarks/web.py`'s `per_request_us` loop) at two request
    counts, and the difference of the two totals divided by the difference of the counts (start-up
    cancels out).
`bare-headers` is bare Starlette plus the five response headers perfkit's core stack adds (request id,
Server-Timing, RateLimit-Policy, RateLimit, ETag) and nothing else: what those headers cost uvicorn.
Needs valgrind and wrk (Debian packages). Takes about a minute per variant.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from web import free_port, wait_port  # noqa: E402

_IN_PROCESS = """
import asyncio, sys
sys.argv = ["x"]
sys.path.insert(0, {here!r})
import web
asyncio.run(web.per_request_us(web.build({variant!r}), {path!r}, {n}, {headers!r}))
"""


def _total(out_file: Path) -> int:
    text = subprocess.run(
        ["callgrind_annotate", str(out_file)], capture_output=True, text=True, check=True
    ).stdout
    match = re.search(r"^\s*([\d,]+)\s.*PROGRAM TOTALS", text, re.M)
    if match is None:
        raise RuntimeError(f"no totals in {out_file}")
    return int(match.group(1).replace(",", ""))


def under_uvicorn(variant: str, args: argparse.Namespace, work: Path) -> tuple[int, int]:
    """(instructions, requests) of a callgrind-run uvicorn server under wrk."""
    port = free_port()
    out = work / f"uv.{variant}"
    server = subprocess.Popen(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable,
         str(HERE / "web.py"), "--serve", variant, "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_port(port, timeout=120)  # valgrind starts Python ~50x slower
        url = f"http://127.0.0.1:{port}{args.path}"
        extra = ["-H", "accept-encoding: gzip"] if args.gzip else []
        subprocess.run(["wrk", "-t1", "-c8", "-d5s", *extra, url], capture_output=True, check=True)
        subprocess.run(["callgrind_control", "-z", str(server.pid)], capture_output=True, check=True)
        load = subprocess.run(
            ["wrk", "-t1", "-c32", f"-d{args.seconds}s", *extra, url],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        subprocess.run(["callgrind_control", "-d", str(server.pid)], capture_output=True, check=True)
    finally:
        server.terminate()
        server.wait(timeout=60)
    match = re.search(r"(\d+) requests in", load)
    requests = int(match.group(1)) if match else 0
    dumps = sorted(work.glob(f"uv.{variant}.*"), key=lambda p: p.stat().st_size, reverse=True)
    return _total(dumps[0]), requests


def in_process(
    variant: str, args: argparse.Namespace, work: Path, low: int = 1000, high: int = 6000
) -> float:
    totals = []
    headers = [(b"accept-encoding", b"gzip")] if args.gzip else []
    for n in (low, high):
        script = _IN_PROCESS.format(here=str(HERE), variant=variant, n=n, path=args.path, headers=headers)
        out = work / f"ip.{variant}.{n}"
        subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, "-c", script],
            capture_output=True, check=True,
        )  # fmt: skip
        totals.append(_total(out))
    return (totals[1] - totals[0]) / (high - low)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--variants", default="bare,bare-headers,perfkit-core")
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--path", default="/", help="/ (hello-world) or /json (the 4 KB body)")
    parser.add_argument("--gzip", action="store_true", help="send Accept-Encoding: gzip")
    args = parser.parse_args()
    missing = [tool for tool in ("valgrind", "callgrind_annotate", "wrk") if shutil.which(tool) is None]
    if missing:
        raise SystemExit(f"needs {', '.join(missing)} (apt-get install valgrind wrk)")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for variant in args.variants.split(","):
            total, requests = under_uvicorn(variant, args, Path(tmp))
            rows.append((variant, total / max(1, requests), requests, in_process(variant, args, Path(tmp))))
    base_uv, base_ip = rows[0][1], rows[0][3]
    what = f"GET {args.path}" + (" (Accept-Encoding: gzip)" if args.gzip else "")
    print(f"instructions per request (callgrind), {what}, python {sys.version.split()[0]}")
    head = ("variant", "uvicorn", "vs " + rows[0][0], "requests", "in-process", "added")
    print("  {:16s} {:>10s} {:>12s} {:>9s} {:>11s} {:>9s}".format(*head))
    for variant, uv, requests, ip in rows:
        print(
            f"  {variant:16s} {uv:10.0f} {base_uv / uv:11.2f}x {requests:9d} {ip:11.0f} {ip - base_ip:+9.0f}"
        )
    print(f"  ('vs {rows[0][0]}': the throughput ratio if time followed instructions)")


if __name__ == "__main__":
    main()
