"""Real-time hub benchmark (issue 17): perfkit.realtime vs python-socketio, channels + channels_redis and
broadcaster + Starlette, in one run, on the same Redis database.

    python benchmarks/realtime.py [--peers perfkit,socketio,channels,broadcaster] [--idle 10000]
                                  [--fanout 1000] [--burst 20] [--connections 1000] [--rate 100]
                                  [--seconds 10] [--profile]

For each library: two uvicorn processes of its server (benchmarks/realtime_peers/, same uvicorn setup
for all: uvloop, httptools, `websockets-sansio`), and the load client (realtime_peers/load.py) in a
third process, which also publishes, through the library's own Redis API (as a job or a script of the
app would), so the servers only fan out. A fresh pair of servers for (a), for (b)+(c) and for (d):

(a) idle: `--idle` subscribed WebSockets on the first server process; its RSS (psutil) before and after,
    so memory per connection = growth / connections (the server's own baseline is not counted).
(b) fan-out: `--fanout` subscribers of one channel, half on each process; `--burst` publishes in one
    request to the first process; messages delivered per second (median of `--rounds`), the time until
    the burst's first message reached all subscribers, and messages lost.
(c) latency: `--connections` connections over 100 channels (10 subscribers each), `--rate` publishes/s
    to random channels through either process, for `--seconds`; publish-to-deliver p50/p99 (the client's
    clock at the publish request to its clock at the frame: same machine, same clock).
(d) slow consumer: (c) again, plus one connection that never reads, on a channel fed 16 KiB messages at
    `--rate`; the others' p99 and the servers' RSS growth.

Redis: `RT_BENCH_REDIS` (default redis://127.0.0.1:6379/14), flushed before and after. Every process is
127.0.0.1 only, bounded in time and stopped by pid. `--profile` records the perfkit server during (b)
with py-spy (a flame graph in /tmp). Ratios are against the best peer of the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import machine_line, table

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PEERS = ["perfkit", "perfkit-nobatch", "socketio", "channels", "broadcaster", "floor"]
LABELS = {
    "perfkit": "perfkit.realtime",
    "perfkit-nobatch": "perfkit.realtime, batch_window=0",
    "socketio": "python-socketio (AsyncRedisManager)",
    "channels": "channels + channels_redis",
    "broadcaster": "broadcaster + Starlette",
    "floor": "(floor: raw ASGI WebSocket, no library)",
}
ONLY = {"floor": {"idle"}}  # what a row can run
LIBRARIES = ("socketio", "channels", "broadcaster")  # the peers the ratios compare against
REDIS_URL = os.environ.get("RT_BENCH_REDIS", "redis://127.0.0.1:6379/14")
CLIENT_TIMEOUT = 1200  # seconds for one library's whole client run


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# a variant: (server module, client dialect, Hub settings); also `perfkit@name=value,...` on the command
# line (`perfkit@batch_window=0.05`), a value parsed as JSON where it is JSON
VARIANTS = {"perfkit-nobatch": ("perfkit", {"batch_window": 0})}


def variant(peer: str) -> tuple[str, dict[str, Any]]:
    if "@" not in peer:
        return VARIANTS.get(peer, (peer, {}))
    module, _, spec = peer.partition("@")
    settings: dict[str, Any] = {}
    for pair in spec.split(","):
        name, _, raw = pair.partition("=")
        try:
            settings[name] = json.loads(raw)
        except ValueError:
            settings[name] = raw
    return module, settings


def peer_label(peer: str) -> str:
    module, settings = variant(peer)
    extra = ", ".join(f"{k}={v}" for k, v in settings.items())
    return LABELS.get(peer) or f"{LABELS[module]}, {extra}"


def env(settings: dict[str, Any] | None = None) -> dict[str, str]:
    path = [str(ROOT / "src"), str(HERE), os.environ.get("PYTHONPATH", "")]
    return {
        **os.environ, "PYTHONPATH": os.pathsep.join(p for p in path if p), "RT_BENCH_REDIS": REDIS_URL,
        "RT_BENCH_SETTINGS": json.dumps(settings or {}),
    }  # fmt: skip


def start_server(peer: str, port: int) -> subprocess.Popen[bytes]:
    module, settings = variant(peer)
    cmd = [
        sys.executable, "-m", "uvicorn", f"realtime_peers.{module}_app:app", "--host", "127.0.0.1",
        "--port", str(port), "--loop", "uvloop", "--http", "httptools", "--ws", "websockets-sansio",
        "--no-access-log", "--log-level", "warning", "--backlog", "4096",
    ]  # fmt: skip
    return subprocess.Popen(cmd, cwd=HERE, env=env(settings))


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server on {port} exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.1)
    raise RuntimeError(f"server on {port} did not start in {timeout} s")


def stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def profile(pid: int, seconds: float) -> subprocess.Popen[bytes] | None:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        return None
    out = f"/tmp/perfkit-realtime-fanout-{pid}.txt"
    print(f"  profiling pid {pid} for {seconds:.0f} s into {out} (collapsed stacks)", flush=True)
    return subprocess.Popen(
        [spy, "record", "-p", str(pid), "-d", str(int(seconds)), "-r", "200", "-f", "raw", "-o", out],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def run_peer(peer: str, args: argparse.Namespace) -> dict[str, Any]:
    """Each group of scenarios on a fresh pair of server processes: memory freed by one scenario (the idle
    connections) must not hide the growth of the next (the slow consumer)."""
    result: dict[str, Any] = {"peer": peer}
    wanted = args.scenarios.split(",")
    for group in (["idle"], ["fanout", "latency"], ["slow"]):
        scenarios = [s for s in group if s in wanted and s in ONLY.get(peer, group)]
        if scenarios:
            found = run_group(peer, ",".join(scenarios), args)
            refused = {**result.get("refused_subscribes", {})}
            for code, n in found.pop("refused_subscribes", {}).items():
                refused[code] = refused.get(code, 0) + n
            reasons = result.get("refused_reasons", []) + found.pop("refused_reasons", [])
            result.update(found, refused_subscribes=refused, refused_reasons=reasons[:3])
    return result


def run_group(peer: str, scenarios: str, args: argparse.Namespace) -> dict[str, Any]:
    ports = [free_port(), free_port()]
    dialect = variant(peer)[0]
    servers = [start_server(peer, port) for port in ports]
    spy = None
    try:
        for port, proc in zip(ports, servers, strict=True):
            wait_port(port, proc)
        cmd = [
            sys.executable, str(HERE / "realtime_peers" / "load.py"), "--peer", dialect,
            "--ports", ",".join(map(str, ports)), "--pids", ",".join(str(s.pid) for s in servers),
            "--redis", REDIS_URL, "--scenarios", scenarios, "--idle", str(args.idle),
            "--fanout", str(args.fanout),
            "--burst", str(args.burst), "--rounds", str(args.rounds), "--connections", str(args.connections),
            "--rate", str(args.rate), "--seconds", str(args.seconds),
        ]  # fmt: skip
        if args.profile and peer.startswith("perfkit") and "fanout" in scenarios:
            spy = profile(servers[0].pid, args.profile_seconds)
        client = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=CLIENT_TIMEOUT)
        if client.returncode != 0:
            print(client.stderr[-3000:], file=sys.stderr)
            return {"error": f"client exited {client.returncode} in {scenarios}"}
        found = dict(json.loads(client.stdout.strip().splitlines()[-1]))
        found.pop("peer", None)
        return found
    finally:
        if spy is not None:  # py-spy writes its file on SIGINT (Ctrl-C), not on SIGTERM
            spy.send_signal(signal.SIGINT)
            try:
                spy.wait(timeout=30)
            except subprocess.TimeoutExpired:
                stop(spy)
        for proc in servers:
            stop(proc)


def flush() -> None:
    r = redis.Redis.from_url(REDIS_URL)
    r.flushdb()
    r.close()


# -- the report
def num(x: Any, fmt: str = "{:.0f}") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else fmt.format(x)


def best_peer(results: list[dict[str, Any]], get: Any, higher: bool) -> float | None:
    values = [get(r) for r in results if r["peer"] in LIBRARIES and get(r) is not None]
    if not values:
        return None
    return max(values) if higher else min(values)


def get(r: dict[str, Any], *path: str) -> Any:
    for key in path:
        if not isinstance(r, dict) or key not in r:
            return None
        r = r[key]
    return r


def report(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    rows = []
    for r in results:
        idle_kib = get(r, "idle", "per_conn")
        rows.append(
            [
                peer_label(r["peer"]),
                num(get(r, "idle", "connections")),
                num(None if idle_kib is None else idle_kib / 1024, "{:.1f}"),
                num(get(r, "fanout", "rate")),
                num(get(r, "fanout", "cpu_us_per_msg"), "{:.1f}"),
                num(get(r, "fanout", "frames_per_msg"), "{:.2f}"),
                num(get(r, "fanout", "first_to_all_ms"), "{:.0f}"),
                num(get(r, "fanout", "lost")),
                num(get(r, "latency", "p50_ms"), "{:.1f}"),
                num(get(r, "latency", "p99_ms"), "{:.1f}"),
                f"{num(get(r, 'latency', 'delivered'))}/{num(get(r, 'latency', 'expected'))}",
                num(get(r, "slow", "p99_ms"), "{:.1f}"),
                num(None if get(r, "slow", "rss_growth") is None else max(r["slow"]["rss_growth"]) / 2**20,
                    "{:.1f}"),
            ]
        )  # fmt: skip
    headers = [
        "library", "(a) idle conns", "KiB/conn", "(b) msgs/s", "CPU us/msg", "frames/msg", "1st->all ms",
        "lost", "(c) p50 ms", "p99 ms", "delivered", "(d) others p99 ms", "RSS +MiB",
    ]  # fmt: skip
    print()
    print(table(headers, rows))
    for r in results:
        if r.get("refused_subscribes") or r.get("error"):
            extra = f"; error: {r['error']}" if r.get("error") else ""
            refused = r.get("refused_subscribes")
            print(f"{peer_label(r['peer'])}: subscribes refused (and retried) {refused}{extra}")
            for reason in r.get("refused_reasons", []):
                print(f"  e.g. {reason}")
    ratios = [
        ("(a) memory per idle connection", ("idle", "per_conn"), False),
        ("(b) fan-out messages delivered per second", ("fanout", "rate"), True),
        ("(b) fan-out server CPU per delivered message", ("fanout", "cpu_us_per_msg"), False),
        ("(c) p99 latency", ("latency", "p99_ms"), False),
        ("(d) others' p99 with a slow consumer", ("slow", "p99_ms"), False),
    ]
    for pk in (r for r in results if r["peer"].startswith("perfkit")):
        print(f"\n{peer_label(pk['peer'])} vs the best peer of this run (x > 1: perfkit better):")
        for label, path, higher in ratios:
            mine = get(pk, *path)
            best = best_peer(results, lambda r, path=path: get(r, *path), higher)
            if mine is None or best is None or not mine:
                continue
            ratio = mine / best if higher else best / mine
            print(f"  {label}: {ratio:.2f}x (perfkit {mine:.4g}, best peer {best:.4g})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peers", default=",".join(PEERS))
    ap.add_argument("--scenarios", default="idle,fanout,latency,slow")
    ap.add_argument("--idle", type=int, default=10_000)
    ap.add_argument("--fanout", type=int, default=1000)
    ap.add_argument("--burst", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=100)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--profile", action="store_true", help="py-spy the perfkit server during the run")
    ap.add_argument("--profile-seconds", type=float, default=30)
    ap.add_argument("--json", help="write the raw results here")
    args = ap.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the servers inherit it
    print(machine_line(f" RLIMIT_NOFILE={hard}"))
    print(f"redis: {REDIS_URL} (flushed before and after)")
    flush()
    results = []
    try:
        for peer in args.peers.split(","):
            t0 = time.monotonic()
            print(f"{peer_label(peer)} ...", flush=True)
            results.append(run_peer(peer, args))
            print(f"  {json.dumps(results[-1])} ({time.monotonic() - t0:.0f} s)", flush=True)
            flush()
    finally:
        flush()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    report(results, args)


if __name__ == "__main__":
    main()
