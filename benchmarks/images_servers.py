"""perfkit's image endpoint against thumbor, as HTTP servers: cold and cached, latency, CPU and RSS.

    .venv/bin/python benchmarks/images_servers.py --thumbor .venv-thumbor/bin/thumbor [--cold 30]

Both serve the same 2 MP JPEG from a folder, resized to 500 px WebP, one process each (perfkit under
uvicorn, unsigned URLs and an in-process cache; thumbor 7 with its file loader, PIL engine and file
result storage, unsafe URLs). Cold: `--cold` requests, each a new variant (quality 30, 31, ...: nothing
to reuse), the servers alternating; cached: `--cached` requests of one variant after a warm-up. One
request at a time from this process (httpx); per server: p50/p95 latency, requests/s, the server's CPU
time per request (psutil, user + system: steadier than wall time on a shared machine) and its peak RSS
(VmHWM). thumbor installs into its own venv (`python -m venv .venv-thumbor && .venv-thumbor/bin/pip
install thumbor`): it is not in the `bench` extra, its pins would bend the others'.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx
import psutil
from PIL import Image

SRC = Path(__file__).resolve().parents[1] / "src"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"no server on port {port} after {timeout} s")


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024


def start_perfkit(folder: Path, port: int) -> subprocess.Popen[bytes]:
    (folder / "perfkit_app.py").write_text(
        textwrap.dedent(f"""
        from perfkit import Cache
        from perfkit.images import ImageService, Policy
        app = ImageService(sources=[{str(folder / "images")!r}], cache=Cache("memory://"),
                           signed=False, base="", policy=Policy(widths=(500,)))
        """)
    )
    env = {**os.environ, "PYTHONPATH": f"{SRC}:{folder}"}
    cmd = [sys.executable, "-m", "uvicorn", "perfkit_app:app", "--app-dir", str(folder), "--port", str(port),
           "--log-level", "warning"]  # fmt: skip
    return subprocess.Popen(cmd, env=env, cwd=folder)


def start_thumbor(thumbor: str, folder: Path, port: int) -> subprocess.Popen[bytes]:
    conf = folder / "thumbor.conf"
    conf.write_text(
        textwrap.dedent(f"""
        LOADER = "thumbor.loaders.file_loader"
        FILE_LOADER_ROOT_PATH = {str(folder / "images")!r}
        STORAGE = "thumbor.storages.no_storage"
        RESULT_STORAGE = "thumbor.result_storages.file_storage"
        RESULT_STORAGE_FILE_STORAGE_ROOT_PATH = {str(folder / "thumbor-results")!r}
        RESULT_STORAGE_STORES_UNSAFE = True
        ALLOW_UNSAFE_URL = True
        QUALITY = 75
        """)
    )
    return subprocess.Popen([thumbor, "-p", str(port), "-c", str(conf), "-l", "warning"], cwd=folder)


def timed(client: httpx.Client, pid: int, urls: list[str]) -> dict[str, float]:
    proc = psutil.Process(pid)
    times = []
    cpu0 = sum(proc.cpu_times()[:2])
    for url in urls:
        t0 = time.perf_counter()
        response = client.get(url)
        times.append(time.perf_counter() - t0)
        if response.status_code != 200 or not response.headers["content-type"].startswith("image/webp"):
            raise SystemExit(f"{url}: {response.status_code} {response.headers.get('content-type')}")
    cpu = (sum(proc.cpu_times()[:2]) - cpu0) / len(urls)
    times.sort()
    return {"p50": statistics.median(times) * 1000, "p95": times[int(len(times) * 0.95) - 1] * 1000,
            "rps": len(times) / sum(times), "cpu": cpu * 1000}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--thumbor", required=True, help="the thumbor executable (in its own venv)")
    parser.add_argument("--cold", type=int, default=30)
    parser.add_argument("--cached", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "images").mkdir()
        w, h = 1732, 1155
        fractal = Image.effect_mandelbrot((w, h), (-2.0, -1.5, 1.0, 1.5), 100)
        gradient = Image.linear_gradient("L").resize((w, h))
        Image.merge("RGB", (fractal, Image.effect_noise((w, h), 25), gradient)).save(
            folder / "images" / "photo.jpg", "JPEG", quality=90
        )
        ports = {"perfkit": free_port(), "thumbor": free_port()}
        servers: dict[str, subprocess.Popen[bytes]] = {}
        try:
            servers["perfkit"] = start_perfkit(folder, ports["perfkit"])
            servers["thumbor"] = start_thumbor(str(Path(args.thumbor).resolve()), folder, ports["thumbor"])
            for port in ports.values():
                wait_port(port)
            base = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}

            def url(name: str, q: int) -> str:
                if name == "perfkit":
                    return f"{base[name]}/_/w=500,q={q},f=webp/photo.jpg"
                return f"{base[name]}/unsafe/500x0/filters:format(webp):quality({q})/photo.jpg"

            results: dict[tuple[str, str], dict[str, float]] = {}
            with httpx.Client(timeout=60) as client:
                for name in servers:
                    timed(client, servers[name].pid, [url(name, 99)])  # warm-up: codecs, imports
                cold: dict[str, list[dict[str, float]]] = {name: [] for name in servers}
                procs = {name: psutil.Process(server.pid) for name, server in servers.items()}
                cpu0 = {name: sum(proc.cpu_times()[:2]) for name, proc in procs.items()}
                for i in range(args.cold):  # alternating, so that noise hits both
                    for name in servers:
                        cold[name].append(timed(client, servers[name].pid, [url(name, 30 + i)]))
                for name in servers:
                    cpu = (sum(procs[name].cpu_times()[:2]) - cpu0[name]) / args.cold
                    ms = sorted(r["p50"] for r in cold[name])
                    results[(name, "cold")] = {
                        "p50": statistics.median(ms), "p95": ms[int(len(ms) * 0.95) - 1],
                        "rps": 1000 * len(ms) / sum(ms), "cpu": cpu * 1000,
                    }  # fmt: skip
                    results[(name, "cached")] = timed(
                        client, servers[name].pid, [url(name, 99)] * args.cached
                    )
            rss = {name: peak_rss_mb(server.pid) for name, server in servers.items()}
        finally:
            for server in servers.values():
                server.terminate()
                server.wait(10)
    print(
        f"2 MP JPEG -> 500 px WebP over HTTP, one request at a time; {args.cold} cold, {args.cached} cached"
    )
    print("| server | phase | p50 ms | p95 ms | requests/s | server CPU ms per request | peak RSS MB |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for (name, phase), r in results.items():
        cells = f"{r['p50']:.1f} | {r['p95']:.1f} | {r['rps']:.0f} | {r['cpu']:.2f} | {rss[name]:.0f}"
        print(f"| {name} | {phase} | {cells} |")
    for phase in ("cold", "cached"):
        p, t = results[("perfkit", phase)], results[("thumbor", phase)]
        print(f"{phase}: perfkit / thumbor requests/s {p['rps'] / t['rps']:.2f}x, "
              f"thumbor / perfkit CPU per request {t['cpu'] / p['cpu']:.2f}x")  # fmt: skip
    p = results[("perfkit", "cached")]["rps"] / results[("perfkit", "cold")]["rps"]
    print(f"perfkit cached / cold requests/s: {p:.0f}x")


if __name__ == "__main__":
    main()
