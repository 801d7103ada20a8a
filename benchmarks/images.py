"""The image engine: perfkit's Pillow pipeline against pyvips and plain Pillow scripts, on the same inputs.

    .venv-bench/bin/python benchmarks/images.py [--rounds 3] [--iterations 5] [--instructions]

Each (contender, input) runs in a fresh subprocess, so that its peak RSS (VmHWM) is its own: one
warm-up, then `--iterations` timed operations (read the file, decode, resize to the target width,
encode WebP at quality 75, no metadata). Rounds alternate the order of the contenders; the table has
the median over rounds of each subprocess's median wall time and CPU time (user + system: libvips
runs its own threads, so its CPU time can exceed its wall time) per image, and the largest peak RSS
(the baseline, the interpreter with the library imported, in brackets). Ratios are to perfkit (> 1:
slower or larger than perfkit); on this shared VM wall time is noisy, CPU time is the steadier figure.
`--instructions` also counts one operation's instructions under callgrind (this VM's `perf stat` has
no instruction counter).

Contenders:
  perfkit         perfkit.images.engine.render (what the endpoint runs: header checks, JPEG draft,
                  EXIF orientation, one Lanczos resize with reducing_gap, WebP without metadata)
  pyvips          pyvips.Image.thumbnail (shrink-on-load) + webpsave_buffer(Q=75, keep="none")
  pillow-thumb    the plain Pillow peer: Image.open + thumbnail() + save(WEBP, quality=75)
  pillow-naive    Image.open + resize(LANCZOS) + save: no draft, the full image decoded
Needs Pillow, pyvips and pyvips-binary (the `bench` extra) and perfkit itself.

`--endpoint` measures the endpoint instead, in-process (the ASGI app called directly, no server), on the
issue's case, a 2 MP JPEG to 500 px WebP: cold (the cache cleared before each request: decode, resize,
encode, store) and cached (a hit: the stored bytes, ETag and headers), p50/p95 and requests/s, against
a naive Pillow endpoint (decode, resize and encode on every request, no cache); and the bytes AVIF and
WebP save against the JPEG at the default qualities.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import io, json, statistics, sys, time
name, path, width, iterations = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])

def perfkit_op():
    from perfkit.images.config import Limits
    from perfkit.images.engine import render
    from perfkit.images.options import Options
    limits, options = Limits(max_pixels=100_000_000), Options(w=width)
    def op():
        with open(path, "rb") as f:
            return render(f.read(), options, "webp", limits).body
    return op

def pyvips_op():
    import pyvips
    def op():
        return pyvips.Image.thumbnail(path, width).webpsave_buffer(Q=75, keep="none")
    return op

def pillow_thumb_op():
    from PIL import Image
    Image.MAX_IMAGE_PIXELS = None
    def op():
        with Image.open(path) as im:
            im.thumbnail((width, width * 10))
            out = io.BytesIO()
            im.save(out, "WEBP", quality=75)
            return out.getvalue()
    return op

def pillow_naive_op():
    from PIL import Image
    Image.MAX_IMAGE_PIXELS = None
    def op():
        with Image.open(path) as im:
            im = im.convert("RGB")
            small = im.resize((width, round(im.height * width / im.width)), Image.Resampling.LANCZOS)
            out = io.BytesIO()
            small.save(out, "WEBP", quality=75)
            return out.getvalue()
    return op

op = {"perfkit": perfkit_op, "pyvips": pyvips_op, "pillow-thumb": pillow_thumb_op,
      "pillow-naive": pillow_naive_op}[name]()
def hwm():  # this process's own peak RSS in KiB (ru_maxrss would carry the parent's over fork + exec)
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
baseline = hwm()
size = len(op())  # warm-up (loads the codecs)
walls, cpus = [], []
for _ in range(iterations):
    c0, t0 = time.process_time(), time.perf_counter()
    op()
    walls.append(time.perf_counter() - t0)
    cpus.append(time.process_time() - c0)
peak = hwm()
print(json.dumps({"wall": statistics.median(walls or [0]), "cpu": statistics.median(cpus or [0]), "rss": peak,
                  "baseline": baseline, "bytes": size}))
"""

CONTENDERS = ["perfkit", "pyvips", "pillow-thumb", "pillow-naive"]


def make_inputs(folder: Path) -> list[tuple[str, Path, int]]:
    """(label, file, target width): a 5000x5000 JPEG to 640, a 2 MP JPEG to 500, a 3000x3000 PNG to 640."""
    from PIL import Image

    def picture(w: int, h: int) -> Image.Image:
        fractal = Image.effect_mandelbrot((w, h), (-2.0, -1.5, 1.0, 1.5), 100)
        noise = Image.effect_noise((w, h), 25)
        gradient = Image.linear_gradient("L").resize((w, h))
        return Image.merge("RGB", (fractal, noise, gradient))

    inputs = []
    for label, (w, h), fmt, target in [
        ("5000x5000 JPEG -> 640 WebP", (5000, 5000), "JPEG", 640),
        ("2 MP JPEG -> 500 WebP", (1732, 1155), "JPEG", 500),
        ("3000x3000 PNG -> 640 WebP", (3000, 3000), "PNG", 640),
    ]:
        path = folder / f"{w}x{h}.{fmt.lower()}"
        picture(w, h).save(path, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
        inputs.append((label, path, target))
    return inputs


def run_child(name: str, path: Path, width: int, iterations: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, name, str(path), str(width), str(iterations)],
        capture_output=True, text=True, check=True, env=env, timeout=300,
    )  # fmt: skip
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def instructions(name: str, path: Path, width: int) -> int:
    """Instructions of the child with one operation minus the child with none (start-up cancels out)."""
    counts = []
    for iterations in (0, 1):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "cg.out"
            env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
            done = subprocess.run(
                ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, "-c", CHILD,
                 name, str(path), str(width), str(iterations)],
                capture_output=True, text=True, env=env, timeout=1200,
            )  # fmt: skip
            if done.returncode:
                raise SystemExit(f"callgrind run of {name} failed:\n{done.stderr[-3000:]}")
            totals = subprocess.run(["callgrind_annotate", str(out)], capture_output=True, text=True).stdout
            line = next(x for x in totals.splitlines() if "PROGRAM TOTALS" in x)
            counts.append(int(line.split()[0].replace(",", "")))
    return counts[1] - counts[0]


ENDPOINT = r"""
import asyncio, io, json, statistics, sys, tempfile, time, pathlib
from PIL import Image
from perfkit import Cache
from perfkit.images import ImageService, Policy

folder = pathlib.Path(sys.argv[1]); n = int(sys.argv[2])

async def call(app, path, accept=b"image/webp"):
    scope = {"type": "http", "method": "GET", "path": path, "root_path": "", "headers": [(b"accept", accept)]}
    out = {}
    async def receive():
        return {"type": "http.request", "body": b""}
    async def send(message):
        if message["type"] == "http.response.start":
            out["status"] = message["status"]
        else:
            out["body"] = message["body"]
    await app(scope, receive, send)
    assert out["status"] == 200, out
    return out["body"]

def naive_app():
    async def app(scope, receive, send):
        with Image.open(folder / "photo.jpg") as im:
            size = (500, round(im.height * 500 / im.width))
            small = im.convert("RGB").resize(size, Image.Resampling.LANCZOS)
        buf = io.BytesIO(); small.save(buf, "WEBP", quality=75)
        headers = [(b"content-type", b"image/webp")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": buf.getvalue()})
    return app

def stats(times):
    times = sorted(times)
    return {"p50": statistics.median(times) * 1000, "p95": times[int(len(times) * 0.95) - 1] * 1000,
            "rps": len(times) / sum(times)}

async def main():
    cache = Cache("memory://", namespace="bench")
    policy = Policy(widths=(500,))
    key = "benchmark-key-0123456789"
    images = ImageService(sources=[folder], cache=cache, keys=[key], base="", policy=policy)
    url = images.url("photo.jpg", w=500)
    await call(images, url)  # warm-up
    cold, warm, naive = [], [], []
    app = naive_app()
    await call(app, "/")
    cpu = {"cold": [], "cached": [], "naive": []}
    for _ in range(n):
        await cache.clear()
        c0, t0 = time.process_time(), time.perf_counter(); await call(images, url)
        cold.append(time.perf_counter() - t0); cpu["cold"].append(time.process_time() - c0)
        c0, t0 = time.process_time(), time.perf_counter(); await call(app, "/")
        naive.append(time.perf_counter() - t0); cpu["naive"].append(time.process_time() - c0)
    await call(images, url)
    c0 = time.process_time()
    for _ in range(n * 20):
        t0 = time.perf_counter(); await call(images, url); warm.append(time.perf_counter() - t0)
    cpu["cached"] = [(time.process_time() - c0) / (n * 20)]
    sizes = {}
    for fmt in ("jpeg", "webp", "avif"):
        sizes[fmt] = len(await call(images, images.url("photo.jpg", w=500, f=fmt)))
    with open("/proc/self/status") as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    images.close(); await cache.close()
    cpu_ms = {k: statistics.median(v) * 1000 for k, v in cpu.items()}
    print(json.dumps({"cold": stats(cold), "cached": stats(warm), "naive": stats(naive), "sizes": sizes,
                      "rss_mb": rss / 1024, "cpu": cpu_ms}))

asyncio.run(main())
"""


def endpoint(requests: int) -> None:
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        w, h = 1732, 1155
        fractal = Image.effect_mandelbrot((w, h), (-2.0, -1.5, 1.0, 1.5), 100)
        picture = Image.merge(
            "RGB", (fractal, Image.effect_noise((w, h), 25), Image.linear_gradient("L").resize((w, h)))
        )
        picture.save(Path(tmp) / "photo.jpg", "JPEG", quality=90)
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
        out = subprocess.run([sys.executable, "-c", ENDPOINT, tmp, str(requests)], capture_output=True,
                             text=True, env=env, timeout=600)  # fmt: skip
        if out.returncode:
            raise SystemExit(f"the endpoint run failed:\n{out.stderr}")
    r = json.loads(out.stdout)
    print(f"2 MP JPEG -> 500 px WebP, in-process, {requests} cold requests (cache cleared each time), "
          f"{requests * 20} cached; peak RSS of the process {r['rss_mb']:.0f} MB")  # fmt: skip
    print("| endpoint | p50 ms | p95 ms | requests/s | CPU ms per request (median) |")
    print("|---|---:|---:|---:|---:|")
    for name, key in (("perfkit, cold", "cold"), ("perfkit, cached", "cached"), ("naive Pillow", "naive")):
        cells = f"{r[key]['p50']:.2f} | {r[key]['p95']:.2f} | {r[key]['rps']:.0f} | {r['cpu'][key]:.3f}"
        print(f"| {name} | {cells} |")
    cpu = r["cpu"]
    print(
        f"cached / cold requests/s: {r['cached']['rps'] / r['cold']['rps']:.0f}x "
        f"(CPU per request: {cpu['cold'] / cpu['cached']:.0f}x); perfkit cold / naive requests/s: "
        f"{r['cold']['rps'] / r['naive']['rps']:.2f}x (CPU: {cpu['naive'] / cpu['cold']:.2f}x)"
    )
    jpeg = r["sizes"]["jpeg"]
    for fmt in ("webp", "avif"):
        print(
            f"{fmt}: {r['sizes'][fmt]} bytes vs JPEG {jpeg}: {100 * (1 - r['sizes'][fmt] / jpeg):.0f} % less"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--instructions", action="store_true", help="also count instructions (slow)")
    parser.add_argument("--endpoint", action="store_true", help="measure the endpoint, cold and cached")
    parser.add_argument("--requests", type=int, default=40)
    args = parser.parse_args()
    if args.endpoint:
        endpoint(args.requests)
        return
    with tempfile.TemporaryDirectory() as tmp:
        inputs = make_inputs(Path(tmp))
        results: dict[tuple[str, str], list[dict[str, float]]] = {}
        for r in range(args.rounds):
            order = CONTENDERS[r % len(CONTENDERS) :] + CONTENDERS[: r % len(CONTENDERS)]
            for label, path, width in inputs:
                for name in order:
                    result = run_child(name, path, width, args.iterations)
                    results.setdefault((label, name), []).append(result)
        counted = {}
        if args.instructions:
            for label, path, width in inputs[:1]:
                for name in CONTENDERS:
                    counted[(label, name)] = instructions(name, path, width)
    python = sys.version.split()[0]
    print(f"Python {python}, {os.cpu_count()} CPUs; {args.rounds} rounds x {args.iterations} images")
    print("| input | engine | wall ms | CPU ms | peak RSS MB (baseline) | output bytes | CPU / perfkit |"
          " wall / perfkit | RSS / perfkit |"
          + (" instructions (M) |" if counted else ""))  # fmt: skip
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if counted else ""))
    for label, _, _ in inputs:
        base_wall = statistics.median(x["wall"] for x in results[(label, "perfkit")])
        base_rss = max(x["rss"] for x in results[(label, "perfkit")])
        base_cpu = statistics.median(x["cpu"] for x in results[(label, "perfkit")])
        for name in CONTENDERS:
            rows = results[(label, name)]
            wall = statistics.median(x["wall"] for x in rows)
            cpu = statistics.median(x["cpu"] for x in rows)
            rss = max(x["rss"] for x in rows)
            baseline = max(x["baseline"] for x in rows)
            extra = ""
            if counted:
                extra = f" {counted[(label, name)] / 1e6:,.0f} |" if (label, name) in counted else " |"
            cells = [label, name, f"{wall * 1000:.0f}", f"{cpu * 1000:.0f}",
                     f"{rss / 1024:.0f} ({baseline / 1024:.0f})", str(int(rows[0]["bytes"])),
                     f"{cpu / base_cpu:.2f}", f"{wall / base_wall:.2f}", f"{rss / base_rss:.2f}"]  # fmt: skip
            print("| " + " | ".join(cells) + " |" + extra)


if __name__ == "__main__":
    main()
