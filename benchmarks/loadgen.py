"""Load-generator benchmark (issue 7): perfkit bench vs locust FastHttpUser vs wrk, per client CPU-second.

    .venv/bin/python benchmarks/loadgen.py            # 3 rounds of 6 s per contender
    .venv/bin/python benchmarks/loadgen.py --quick    # 1 round of 4 s

One local server for everyone: a raw asyncio (uvloop) hello-world on 127.0.0.1, pinned to the last
core; each client is pinned to core 0 (`sched_setaffinity`), with the same number of keep-alive
connections (16). What is compared is requests per client CPU-second in the steady state: the
client's CPU time (user + system, all threads, from /proc via psutil) and the server's own request
counter are sampled 1.5 s into the run and 0.5 s before its end, so start-up costs (Python imports,
gevent) do not count against anyone. The server's counter is the referee for every client. Exits 0
whether or not a target is met.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _util import fmt_ops, machine_line, table

CONNECTIONS = 16
BIN = Path(sys.executable).parent
LOCUSTFILE = """
from locust import constant, task
from locust.contrib.fasthttp import FastHttpUser

class Hello(FastHttpUser):
    wait_time = constant(0)

    @task
    def hello(self):
        self.client.get("/")
"""

# -- the server (run as a subprocess: `loadgen.py --serve PORTFILE`) ---------------------------------

COUNT = 0
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, world!"


class Hello(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t = transport
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        global COUNT
        buf = self.buf + data
        out = []
        while (i := buf.find(b"\r\n\r\n")) >= 0:
            head, buf = buf[:i], buf[i + 4 :]
            if head.startswith(b"GET /__count"):
                body = str(COUNT).encode()
                out.append(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            else:
                COUNT += 1
                out.append(RESPONSE)
        self.buf = buf
        self.t.write(b"".join(out))  # type: ignore[attr-defined]


def serve(portfile: str) -> None:
    import uvloop

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(Hello, "127.0.0.1", 0, backlog=2048)
        Path(portfile + ".tmp").write_text(str(server.sockets[0].getsockname()[1]))
        os.replace(portfile + ".tmp", portfile)
        await server.serve_forever()

    uvloop.run(main())


def server_count(port: int) -> int:
    import socket

    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"GET /__count HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data or not data.split(b"\r\n\r\n", 1)[1]:
            data += s.recv(4096)
    return int(data.split(b"\r\n\r\n", 1)[1])


# -- the clients ------------------------------------------------------------------------------------


def pin(core: int) -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {core})


def commands(url: str, seconds: float, workdir: Path) -> dict[str, list[str] | None]:
    locustfile = workdir / "locustfile.py"
    locustfile.write_text(LOCUSTFILE)
    wrk = shutil.which("wrk")
    return {
        "perfkit bench": [
            str(BIN / "perfkit"),
            "bench",
            url,
            "--users",
            str(CONNECTIONS),
            "--duration",
            f"{seconds}s",
            "-q",
            "--json",
            str(workdir / "perfkit.json"),
        ],
        "locust FastHttpUser": [
            str(BIN / "locust"),
            "-f",
            str(locustfile),
            "--headless",
            "--users",
            str(CONNECTIONS),
            "--spawn-rate",
            str(CONNECTIONS),
            "--run-time",
            f"{int(seconds)}s",
            "--host",
            url.rstrip("/"),
            "--only-summary",
            "--loglevel",
            "WARNING",
        ],
        "wrk": [wrk, "-t1", f"-c{CONNECTIONS}", f"-d{int(seconds)}s", url] if wrk else None,
    }


def measure(cmd: list[str], port: int, seconds: float, client_core: int) -> tuple[float, int, float]:
    """(requests per client CPU-second, requests in the window, window seconds)."""
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=lambda: pin(client_core)
    )
    ps = psutil.Process(proc.pid)

    def cpu() -> float:
        t = ps.cpu_times()
        return t.user + t.system

    try:
        time.sleep(1.5)
        c0, n0, w0 = cpu(), server_count(port), time.perf_counter()
        time.sleep(seconds - 2.0)
        c1, n1, w1 = cpu(), server_count(port), time.perf_counter()
    finally:
        try:
            proc.wait(timeout=seconds + 15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    requests = n1 - n0
    return requests / max(c1 - c0, 1e-9), requests, w1 - w0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve", metavar="PORTFILE")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--rounds", type=int)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    seconds = args.seconds or (4.0 if args.quick else 6.0)
    rounds = args.rounds or (1 if args.quick else 3)
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [0]
    client_core, server_core = cores[0], cores[-1]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        portfile = workdir / "port"
        server = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(portfile)], preexec_fn=lambda: pin(server_core)
        )
        try:
            deadline = time.monotonic() + 10
            while not portfile.exists():
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("server did not start")
                time.sleep(0.05)
            port = int(portfile.read_text())
            url = f"http://127.0.0.1:{port}/"
            cmds = commands(url, seconds, workdir)
            results: dict[str, list[tuple[float, int, float]]] = {name: [] for name, c in cmds.items() if c}
            names = list(results)
            for r in range(rounds):
                for name in names[r % len(names) :] + names[: r % len(names)]:
                    cmd = cmds[name]
                    assert cmd is not None
                    results[name].append(measure(cmd, port, seconds, client_core))
        finally:
            server.terminate()
            server.wait(timeout=10)
    wrk_version = (
        subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("[")[0].strip()
        if shutil.which("wrk")
        else "not installed"
    )
    print(machine_line())
    print(
        f"versions: perfkit {version('perfkit')}, locust {version('locust')}, {wrk_version or 'wrk'}; "
        f"uvloop {version('uvloop')}"
    )
    print(
        f"server: raw asyncio+uvloop hello world on core {server_core}; clients on core {client_core}; "
        f"{CONNECTIONS} keep-alive connections; {rounds} round(s) of {seconds:g} s, steady-state window "
        f"{seconds - 2:g} s; requests counted by the server"
    )
    print()
    median = {name: statistics.median(x[0] for x in rows) for name, rows in results.items()}
    for name, value in median.items():
        if value <= 0:
            raise SystemExit(f"{name} sent no request in the measured window: check that it runs")
    rows = []
    for name, res in results.items():
        rps = statistics.median(x[1] / x[2] for x in res)
        rows.append(
            [
                name,
                fmt_ops(median[name]),
                fmt_ops(max(x[0] for x in res)),
                fmt_ops(rps),
                "(perfkit)" if name == "perfkit bench" else f"{median['perfkit bench'] / median[name]:.2f}x",
            ]
        )
    print(table(["client", "req/CPU-s median", "best", "req/s (wall)", "perfkit/peer"], rows))
    if "wrk" not in results:
        print("wrk: not installed (apt-get install -y wrk); its row and target are missing")
    print()
    targets = [
        ("perfkit >= 5x locust FastHttpUser", "locust FastHttpUser", 5.0),
        ("perfkit >= 0.5x wrk", "wrk", 0.5),
    ]
    trows = []
    for label, peer, goal in targets:
        if peer in median:
            ratio = median["perfkit bench"] / median[peer]
            trows.append([label, f"{ratio:.2f}x", "PASS" if ratio >= goal else "MISS"])
    print(table(["target", "ratio", "result"], trows))
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
