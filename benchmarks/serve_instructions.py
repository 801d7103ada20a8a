"""`python benchmarks/serve.py --instructions`: instructions per operation through `perfkit serve` (the
server process, under callgrind) and directly (redis-py, perfkit's enqueue, under callgrind), and this
machine's CPython rate to turn them into quiet-machine microseconds. See benchmarks/serve.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from serve import NS, ROOT, HttpConnection, start_server  # type: ignore[import-not-found]

WORK = "s = 0\nfor i in range(50_000):\n    s += i * i % 7\n"  # a few ms: some run gets a whole slice
DIRECT = r"""
import asyncio, sys, redis
from perfkit.jobs import JobQueue
url, ns = sys.argv[1], sys.argv[2]
r = redis.Redis.from_url(url)
jobs = JobQueue(url + "?prefix=pkbenchi" + ns)
jobs.task(name="render")(lambda ctx, i: i)
loop = asyncio.new_event_loop()
body = b'{"value":{"id":1,"title":"slide"},"ttl":300,"tags":["deck"]}'
ops = {
    "cache get": lambda i: r.get("{%s}:d%d" % (ns, i % 100)),
    "cache set": lambda i: r.set("{%s}:d%d" % (ns, i % 100), body, ex=300),
    "job enqueue": lambda i: loop.run_until_complete(jobs.enqueue("render", args=[i])),
}
for name, op in ops.items():
    for i in range(100):
        op(i)
print("ready", flush=True)
for line in sys.stdin:
    name, n = line.rsplit(" ", 1)
    if name == "work":
        exec(compile(open(sys.argv[3]).read(), "work", "exec"))
    else:
        for i in range(int(n)):
            ops[name](i)
    print("done", flush=True)
loop.run_until_complete(jobs.close())
"""


class Counted:
    """A process under callgrind with instrumentation off until `count()` wraps some work in it."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.pid = 0

    def count(self, work) -> int:  # type: ignore[no-untyped-def]
        control = ["callgrind_control"]
        subprocess.run([*control, "-z", str(self.pid)], capture_output=True, check=True)
        subprocess.run([*control, "-i", "on", str(self.pid)], capture_output=True, check=True)
        before = set(self.out.parent.glob(self.out.name + "*"))
        work()
        subprocess.run([*control, "--dump=bench", str(self.pid)], capture_output=True, check=True)
        subprocess.run([*control, "-i", "off", str(self.pid)], capture_output=True, check=True)
        for _ in range(100):
            new = set(self.out.parent.glob(self.out.name + "*")) - before
            if new:
                text = max(new, key=lambda p: p.stat().st_mtime).read_text(errors="replace")
                for line in text.splitlines():
                    if line.startswith("summary:"):
                        return int(line.split()[1])
            time.sleep(0.1)
        raise SystemExit("callgrind wrote no dump")


def run(redis_url: str, n: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="perfkit-serve-instr-"))
    grind = ("valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={tmp}/server.cg")
    proc, port = start_server(redis_url, tmp, grind, wait=300)
    server = Counted(tmp / "server.cg")
    server.pid = proc.pid
    http = HttpConnection(port)
    body = json.dumps({"value": {"id": 1, "title": "slide"}, "ttl": 300, "tags": ["deck"]}).encode()
    job = json.dumps({"type": "render", "args": [1]}).encode()
    serve_ops = {
        "cache get": lambda i: http.request("GET", f"/v1/cache/{NS}/keys/k{i % 100}"),
        "cache set": lambda i: http.request("PUT", f"/v1/cache/{NS}/keys/k{i % 100}", body),
        "job enqueue": lambda i: http.request("POST", "/v1/jobs", job),
    }
    for op in serve_ops.values():  # warm: the first requests of each kind import and compile
        for i in range(100):
            op(i)
    served = {
        name: server.count(lambda op=op: [op(i) for i in range(n)]) / n for name, op in serve_ops.items()
    }
    proc.terminate()
    proc.wait(60)

    (tmp / "direct.py").write_text(DIRECT)
    (tmp / "work.py").write_text(WORK)
    direct_proc = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={tmp}/direct.cg",
         sys.executable, str(tmp / "direct.py"), redis_url, NS, str(tmp / "work.py")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )  # fmt: skip
    assert direct_proc.stdin is not None and direct_proc.stdout is not None
    assert direct_proc.stdout.readline().strip() == "ready"
    direct = Counted(tmp / "direct.cg")
    direct.pid = direct_proc.pid

    def ask(line: str) -> None:
        direct_proc.stdin.write(line + "\n")  # type: ignore[union-attr]
        direct_proc.stdin.flush()  # type: ignore[union-attr]
        assert direct_proc.stdout.readline().strip() == "done"  # type: ignore[union-attr]

    straight = {name: direct.count(lambda name=name: ask(f"{name} {n}")) / n for name in serve_ops}
    work_instr = direct.count(lambda: ask("work 1"))
    direct_proc.stdin.close()
    direct_proc.wait(60)
    code = compile(WORK, "work", "exec")
    fastest = min(_timed(code) for _ in range(200))
    rate = work_instr / fastest / 1e6  # instructions per microsecond, CPython on this machine
    print(f"instructions per operation (callgrind, n={n}); CPython here: {rate:,.0f} instructions/us")
    # the service's work is all overhead: the client's HTTP request costs about what its Redis request did
    head = ("operation", "server instr", "direct instr", "server us/op", "direct us/op", "ops/s/core")
    print("{:<12} {:>13} {:>13} {:>13} {:>13} {:>11}".format(*head))
    for name in serve_ops:
        us, direct_us = served[name] / rate, straight[name] / rate
        row = f"{name:<12} {served[name]:>13,.0f} {straight[name]:>13,.0f} {us:>13.1f} {direct_us:>13.1f}"
        print(f"{row} {1e6 / us:>11,.0f}")


def _timed(code) -> float:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    exec(code, {})
    return time.perf_counter() - t0
