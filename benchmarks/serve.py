"""The cost of going through `perfkit serve` over HTTP keep-alive, against the same operations on Redis
directly, in one run (issue 19: overhead per operation <= 150 us at p50, >= 10k ops/s per core).

    python benchmarks/serve.py [--n 5000] [--rounds 3] [--redis URL]

A real `perfkit serve` process (uvicorn, httptools, uvloop) on Redis (cache and jobs). Per round,
interleaved, each timed request by request over `n` sequential calls from this process:
  - serve: cache get, cache set (JSON, ttl, a tag) and job enqueue over one keep-alive HTTP/1.1
    connection, written and read by a minimal socket client (so the client costs little);
  - direct: the same through redis-py's synchronous client (GET, SET EX) and perfkit's own
    `JobQueue.enqueue` on Redis (the service's enqueue, in process);
  - node (when `node` is installed): the same three through Node's built-in fetch (keep-alive).
Reported: p50 and p99 per operation, the overhead (serve p50 - direct p50), and the service's own CPU
time per operation read from /proc (utime + stime of the server process over the round): ops/s per
core = 1 / that. The CPU figure does not depend on the client's speed, but on a loaded machine (8
sessions on 2 cores) every CPU-second buys less, so:

    python benchmarks/serve.py --instructions [--n 300]

counts instructions instead (valgrind's callgrind, switched on around the timed requests only): the
server's per request, and the direct client's per operation (redis-py, perfkit's enqueue), which do not
depend on the load. They are turned into quiet-machine microseconds with this machine's rate for
CPython measured in the same run (a fixed Python workload: its instruction count under callgrind over
its fastest native time of 200 runs). User-space only: the kernel's share of the sockets is not counted.

    python benchmarks/serve.py --throughput [--rounds 3] [--seconds 4] [--connections 32]

measures ops/s per core under load, the way a service runs: the server pinned to core 0 and `wrk` (it
must be installed) on core 1 with 32 keep-alive connections, one operation at a time for `--seconds`;
ops/s per core = requests served / the server's CPU seconds (utime + stime from /proc) in that window,
so it does not depend on how much of its core the server got on a shared machine.

    python benchmarks/serve.py --floor [--n 1000] [--rounds 3]

times a bare ASGI app under the same uvicorn, by the same client: the HTTP round trip any Python service
pays here before doing anything, next to a redis-py GET.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-token-" + uuid.uuid4().hex
NS = "bench-" + uuid.uuid4().hex[:8]
_ns = time.perf_counter_ns


class HttpConnection:
    """One keep-alive HTTP/1.1 connection: requests as bytes, responses read by Content-Length."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reconnects = -1
        self.connect()

    def connect(self) -> None:
        self.sock = socket.create_connection(("127.0.0.1", self.port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.reconnects += 1

    def recv(self) -> bytes:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionResetError("the server closed the connection")
        return data

    def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        try:
            return self.send(method, path, body)
        except ConnectionError:  # the server closed it (keep-alive timeout): once more, on a new one
            self.sock.close()
            self.connect()
            return self.send(method, path, body)

    def send(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        head = (
            f"{method} {path} HTTP/1.1\r\nhost: bench\r\nauthorization: Bearer {TOKEN}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
        )
        self.sock.sendall(head.encode() + body)
        while b"\r\n\r\n" not in self.buf:
            self.buf += self.recv()
        header, _, rest = self.buf.partition(b"\r\n\r\n")
        length = 0
        for line in header.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        while len(rest) < length:
            rest += self.recv()
        self.buf = rest[length:]
        return int(header[9:12]), rest[:length]


def server_cpu(pid: int) -> float:
    """utime + stime of the process, in seconds (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(n: int, op) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for i in range(n):
        t0 = _ns()
        op(i)
        out.append((_ns() - t0) / 1000)
    return out


def timed_async(loop: asyncio.AbstractEventLoop, n: int, op) -> list[float]:  # type: ignore[no-untyped-def]
    """`timed` for a coroutine operation, every call awaited inside one running loop (so the loop's
    start and stop are not counted in the operation)."""

    async def run() -> list[float]:
        out = []
        for i in range(n):
            t0 = _ns()
            await op(i)
            out.append((_ns() - t0) / 1000)
        return out

    return loop.run_until_complete(run())


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def start_server(
    redis_url: str, tmp: Path, wrapper: tuple[str, ...] = (), wait: float = 20
) -> tuple[subprocess.Popen[bytes], int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    (tmp / "tokens").write_text(f"bench {TOKEN} admin\n")
    proc = subprocess.Popen(
        [*wrapper, sys.executable, "-m", "perfkit", "serve", "--port", str(port), "--cache", redis_url,
         "--jobs", redis_url + "?prefix=pkbench" + NS, "--token-file", str(tmp / "tokens"),
         "--job-type", "render=remote", "--log-level", "warning"],
        cwd=tmp, env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )  # fmt: skip
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            HttpConnection(port).request("GET", "/v1/job-types")
            return proc, port
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("perfkit serve did not start")


NODE = r"""
const [base, token, ns, n] = [process.argv[2], process.argv[3], process.argv[4], Number(process.argv[5])];
const h = { authorization: `Bearer ${token}`, "content-type": "application/json" };
const ops = {
  get: (i) => fetch(`${base}/v1/cache/${ns}/keys/k${i % 100}`, { headers: h }),
  set: (i) => fetch(`${base}/v1/cache/${ns}/keys/k${i % 100}`, { method: "PUT", headers: h,
    body: JSON.stringify({ value: { id: i, title: "slide" }, ttl: 300, tags: ["deck"] }) }),
  enqueue: (i) => fetch(`${base}/v1/jobs`, { method: "POST", headers: h,
    body: JSON.stringify({ type: "render", args: [i] }) }),
};
const out = {};
for (const [name, op] of Object.entries(ops)) {
  const times = [];
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    const r = await op(i); await r.arrayBuffer();
    times.push(Number(process.hrtime.bigint() - t0) / 1000);
  }
  times.sort((a, b) => a - b);
  out[name] = [times[Math.floor(n / 2)], times[Math.floor(n * 0.99)]];
}
console.log(JSON.stringify(out));
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--redis", default=os.environ.get("PERFKIT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument("--instructions", action="store_true", help="count instructions with callgrind")
    parser.add_argument("--throughput", action="store_true", help="ops/s per core under load (wrk)")
    parser.add_argument("--floor", action="store_true", help="a bare uvicorn app's round trip, for scale")
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if args.throughput:
        throughput(args)
        return
    if args.floor:
        floor(args)
        return
    if args.instructions:
        from serve_instructions import run  # type: ignore[import-not-found]  # beside this file

        run(args.redis, args.n if args.n != 5000 else 300)
        return
    tmp = Path(tempfile.mkdtemp(prefix="perfkit-serve-bench-"))
    proc, port = start_server(args.redis, tmp)
    client = redis.Redis.from_url(args.redis)
    from perfkit.jobs import JobQueue

    direct_jobs = JobQueue(args.redis + "?prefix=pkbenchd" + NS)
    direct_jobs.task(name="render")(lambda ctx, i: i)
    from perfkit.cache import Cache

    # the service's own operations in this process: the same perfkit Cache (L2 only, the same tags) and
    # JobQueue, so serve minus these is what the HTTP service itself adds
    direct_cache = Cache(args.redis, namespace=NS + "-d", compression=None)
    loop = asyncio.new_event_loop()
    http = HttpConnection(port)
    body = json.dumps({"value": {"id": 1, "title": "slide"}, "ttl": 300, "tags": ["deck"]}).encode()
    job = json.dumps({"type": "render", "args": [1]}).encode()
    for i in range(100):
        http.request("PUT", f"/v1/cache/{NS}/keys/k{i}", body)
    serve_ops = {
        "cache get": lambda i: http.request("GET", f"/v1/cache/{NS}/keys/k{i % 100}"),
        "cache set": lambda i: http.request("PUT", f"/v1/cache/{NS}/keys/k{i % 100}", body),
        "job enqueue": lambda i: http.request("POST", "/v1/jobs", job),
    }
    direct_ops = {
        "cache get": lambda i: client.get(f"{{{NS}}}:d{i % 100}"),
        "cache set": lambda i: client.set(f"{{{NS}}}:d{i % 100}", body, ex=300),
    }
    in_process = {
        "cache get": lambda i: direct_cache.get(f"k{i % 100}"),
        "cache set": lambda i: direct_cache.set(
            f"k{i % 100}", {"id": i, "title": "slide"}, 300, tags=["deck"]
        ),
        "job enqueue": lambda i: direct_jobs.enqueue("render", args=[i]),
    }
    for i in range(100):
        loop.run_until_complete(direct_cache.set(f"k{i}", {"id": i, "title": "slide"}, 300, tags=["deck"]))
    results: dict[str, dict[str, list[float]]] = {
        op: {"serve": [], "direct": [], "in_process": [], "cpu_us": []} for op in serve_ops
    }
    p99: dict[str, dict[str, list[float]]] = {op: {"serve": [], "direct": []} for op in serve_ops}
    for _ in range(args.rounds):
        for op in serve_ops:
            cpu0 = server_cpu(proc.pid)
            served = timed(args.n, serve_ops[op])
            cpu = server_cpu(proc.pid) - cpu0
            direct = timed(args.n, direct_ops[op]) if op in direct_ops else []
            own = timed_async(loop, args.n, in_process[op])
            results[op]["in_process"].append(pct(own, 0.5))
            results[op]["serve"].append(pct(served, 0.5))
            results[op]["direct"].append(pct(direct or own, 0.5))
            results[op]["cpu_us"].append(cpu / args.n * 1e6)
            p99[op]["serve"].append(pct(served, 0.99))
            p99[op]["direct"].append(pct(direct or own, 0.99))
    node_result = None
    if shutil.which("node"):
        script = tmp / "bench.mjs"
        script.write_text(NODE)
        done = subprocess.run(["node", str(script), f"http://127.0.0.1:{port}", TOKEN, NS, str(args.n)],
                              capture_output=True, text=True, timeout=600)  # fmt: skip
        if done.returncode == 0:
            node_result = json.loads(done.stdout)
    med = statistics.median
    print(f"perfkit serve vs Redis directly: n={args.n} sequential calls x {args.rounds} rounds (medians)")
    print(
        "direct: redis-py GET / SET EX (untagged); enqueue: perfkit's JobQueue.enqueue in process."
        " in-process: the same perfkit Cache / JobQueue call in this process (set with the same tag)"
    )
    heads = ("operation", "serve p50", "direct p50", "overhead", "in-process p50", "overhead vs in-process",
             "serve p99", "server CPU/op", "ops/s/core", "node p50")  # fmt: skip
    widths = (12, 10, 11, 9, 15, 23, 10, 14, 11, 9)
    pairs = list(zip(heads, widths, strict=True))
    print(" ".join(f"{h:<{w}}" if i == 0 else f"{h:>{w}}" for i, (h, w) in enumerate(pairs)))
    names = {"cache get": "get", "cache set": "set", "job enqueue": "enqueue"}
    for op, r in results.items():
        s50, d50, cpu, i50 = med(r["serve"]), med(r["direct"]), med(r["cpu_us"]), med(r["in_process"])
        node = f"{node_result[names[op]][0]:.0f} us" if node_result else "-"
        cells = (f"{s50:.0f} us", f"{d50:.0f} us", f"{s50 - d50:.0f} us", f"{i50:.0f} us",
                 f"{s50 - i50:.0f} us", f"{med(p99[op]['serve']):.0f} us", f"{cpu:.1f} us",
                 f"{1e6 / cpu:,.0f}", node)  # fmt: skip
        print(f"{op:<12} " + " ".join(f"{c:>{w}}" for c, w in zip(cells, widths[1:], strict=True)))
    print(f"(reconnections of the keep-alive connection: {http.reconnects})")
    http.sock.close()
    proc.terminate()
    proc.wait(10)
    loop.run_until_complete(direct_jobs.close())
    loop.run_until_complete(direct_cache.clear())
    loop.run_until_complete(direct_cache.close())
    cleanup = redis.Redis.from_url(args.redis)
    for pattern in (f"{{{NS}}}:*", f"*{NS}*", f"perfkit:tag*{NS}*"):
        keys = list(cleanup.scan_iter(pattern, count=1000))
        if keys:
            cleanup.delete(*keys)


HELLO = """
async def app(scope, receive, send):
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"24")]})
        await send({"type": "http.response.body", "body": b'{"id":1,"title":"slide"}'})
"""


def start_bare(tmp: Path, wrapper: tuple[str, ...] = ()) -> tuple[subprocess.Popen[bytes], int]:
    """The bare ASGI app (`HELLO`) under uvicorn with httptools and uvloop, once it answers."""
    (tmp / "hello.py").write_text(HELLO)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    proc = subprocess.Popen(
        [*wrapper, sys.executable, "-m", "uvicorn", "hello:app", "--port", str(port), "--http", "httptools",
         "--loop", "uvloop", "--log-level", "warning", "--no-access-log"], cwd=tmp,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while True:
        try:
            HttpConnection(port).sock.close()
            return proc, port
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.1)


def floor(args: argparse.Namespace) -> None:
    """The HTTP floor on this machine: a bare ASGI app under uvicorn (httptools, uvloop) answering the
    same sequential keep-alive client, next to a redis-py GET, per round."""
    tmp = Path(tempfile.mkdtemp(prefix="perfkit-serve-floor-"))
    proc, port = start_bare(tmp)
    try:
        http = HttpConnection(port)
        client = redis.Redis.from_url(args.redis)
        client.set(f"{{{NS}}}:floor", b"1", ex=60)
        for n in range(args.rounds):
            bare = timed(args.n, lambda i: http.request("GET", "/"))
            direct = timed(args.n, lambda i: client.get(f"{{{NS}}}:floor"))
            b50, b99, d50 = pct(bare, 0.5), pct(bare, 0.99), pct(direct, 0.5)
            print(f"round {n + 1}: bare uvicorn app p50 {b50:.0f} us (p99 {b99:.0f} us), "
                  f"redis-py GET p50 {d50:.0f} us")  # fmt: skip
        http.sock.close()
    finally:
        proc.terminate()
        proc.wait(10)


WRK_SCRIPT = """
wrk.method = "{method}"
wrk.headers["authorization"] = "Bearer {token}"
wrk.headers["content-type"] = "application/json"
wrk.body = '{body}'
"""


def throughput(args: argparse.Namespace) -> None:
    """wrk against a pinned server, one operation at a time: requests/s and requests per CPU-second."""
    if not shutil.which("wrk"):
        raise SystemExit("--throughput needs wrk (apt-get install wrk)")
    pinned = os.cpu_count() and os.cpu_count() >= 2  # type: ignore[operator]
    tmp = Path(tempfile.mkdtemp(prefix="perfkit-serve-bench-"))
    proc, port = start_server(args.redis, tmp, wrapper=("taskset", "-c", "0") if pinned else ())
    http = HttpConnection(port)
    body = json.dumps({"value": {"id": 1, "title": "slide"}, "ttl": 300, "tags": ["deck"]})
    http.request("PUT", f"/v1/cache/{NS}/keys/k1", body.encode())
    ops = {
        "cache get": ("GET", f"/v1/cache/{NS}/keys/k1", ""),
        "cache set": ("PUT", f"/v1/cache/{NS}/keys/k1", body),
        "job enqueue": ("POST", "/v1/jobs", json.dumps({"type": "render", "args": [1]})),
    }
    results: dict[str, list[tuple[float, float, int]]] = {op: [] for op in ops}
    bare: dict[str, list[tuple[float, float, int]]] = {"bare app": []}
    wrapper = ("taskset", "-c", "0") if pinned else ()
    bare_proc, bare_port = start_bare(tmp, wrapper)
    try:  # the perfkit rounds and the bare app's alternate, so a change in the machine's speed hits both
        for _ in range(args.rounds):
            _load_round(args, proc, port, tmp, ops, results, pinned)
            _load_round(args, bare_proc, bare_port, tmp, {"bare app": ("GET", "/", "")}, bare, pinned)
    finally:
        http.sock.close()
        for running in (proc, bare_proc):
            running.terminate()
            running.wait(10)
    where = "pinned to core 0, wrk to core 1" if pinned else "unpinned"
    print(f"perfkit serve under load: wrk -t1 -c{args.connections} -d{args.seconds}s per operation, "
          f"{args.rounds} rounds, server {where} (medians)")  # fmt: skip
    print(f"{'operation':<12} {'req/s':>9} {'server CPU/op':>14} {'ops/s/core':>11} "
          f"{'rounds (ops/s/core)':>30} {'non-2xx':>8} {'x bare':>7}")  # fmt: skip
    floor_cpu = 1 / statistics.median(r[1] for r in bare["bare app"])
    for op, rows in {**results, **bare}.items():
        rps, per_core = statistics.median(r[0] for r in rows), statistics.median(r[1] for r in rows)
        spread = ", ".join(f"{r[1]:,.0f}" for r in rows)
        bad = sum(r[2] for r in rows)
        print(f"{op:<12} {rps:>9,.0f} {1e6 / per_core:>11.1f} us {per_core:>11,.0f} {spread:>30} {bad:>8} "
              f"{1 / per_core / floor_cpu:>7.2f}")  # fmt: skip
    print("bare app: an ASGI app answering 24 bytes under the same uvicorn (httptools, uvloop): the cost of "
          "any Python HTTP service here before it does anything")  # fmt: skip
    cleanup = redis.Redis.from_url(args.redis)
    for pattern in (f"{{{NS}}}:*", f"*{NS}*", f"perfkit:tag*{NS}*"):
        keys = list(cleanup.scan_iter(pattern, count=1000))
        if keys:
            cleanup.delete(*keys)


def _load_round(args, proc, port, tmp, ops, results, pinned) -> None:  # type: ignore[no-untyped-def]
    """Each of `ops` under wrk for `args.seconds`: (requests/s, requests per server CPU-second, non-2xx)."""
    for op, (method, path, payload) in ops.items():
        script = tmp / "op.lua"
        script.write_text(WRK_SCRIPT.format(method=method, token=TOKEN, body=payload))
        cpu0 = server_cpu(proc.pid)
        done = subprocess.run(
            [*(("taskset", "-c", "1") if pinned else ()), "wrk", "-t1", f"-c{args.connections}",
             f"-d{args.seconds}s", "-s", str(script), f"http://127.0.0.1:{port}{path}"],
            capture_output=True, text=True, check=True, timeout=args.seconds + 30,
        )  # fmt: skip
        cpu = server_cpu(proc.pid) - cpu0
        served = int(done.stdout.split(" requests in ")[0].split()[-1])
        bad = (
            int(done.stdout.split("Non-2xx or 3xx responses:")[1].split()[0])
            if "Non-2xx" in done.stdout
            else 0
        )
        results[op].append((served / args.seconds, served / cpu, bad))


if __name__ == "__main__":
    main()
