"""A throwaway Redis Cluster of real `redis-server` processes on free 127.0.0.1 ports, for the tests.

`start_cluster(dir)` starts the nodes (each ready when it says so on its stdout), creates the cluster with
`redis-cli --cluster create` and waits until every node reports `cluster_state:ok` (a bounded poll: the
nodes agree on it by gossip, which announces nothing a client could await).
`stop()` terminates exactly the processes it started, by their pid.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests import _redis_server

NODES = 3
_START_TIMEOUT = 20.0


def binaries_missing() -> str | None:
    """Why a local cluster cannot be started, or None."""
    missing = [name for name in ("redis-server", "redis-cli") if shutil.which(name) is None]
    return f"{' and '.join(missing)} not installed" if missing else None


def _free_ports(n: int) -> list[int]:
    # cluster nodes also listen on port + 10000 (the bus): pick ports whose bus port is free too
    ports: list[int] = []
    while len(ports) < n:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port + 10000 > 65535 or port in ports:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        ports.append(port)
    return ports


def _cli(port: int, *args: str) -> str:
    out = subprocess.run(
        ["redis-cli", "-h", "127.0.0.1", "-p", str(port), *args],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    return out.stdout


@dataclass
class LocalCluster:
    ports: list[int]
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.ports[0]}"

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)

    def add_node(self, workdir: Path) -> int:
        """Start one more cluster-enabled server (not yet met by the others); returns its port."""
        port = _free_ports(1)[0]
        self.procs.append(_server(port, workdir))
        return port

    def restart_node(self, index: int, workdir: Path) -> None:
        """Stop one node (SIGTERM) and start it again on its port, with its cluster identity
        (nodes-<port>.conf) and without its data (no persistence)."""
        proc = self.procs[index]
        proc.terminate()
        proc.wait(timeout=10)
        self.procs[index] = _server(self.ports[index], workdir)

    def kill_node(self, index: int) -> None:
        """Stop one node for good (a crashed primary)."""
        proc = self.procs[index]
        proc.kill()
        proc.wait(timeout=10)


def start_cluster(workdir: Path, nodes: int = NODES, replicas: int = 0) -> LocalCluster:
    """Start `nodes` primaries, each with `replicas` replicas, in `workdir`; returns once the cluster
    is ok (and every replica is in sync with its primary)."""
    for attempt in range(3):  # a port taken between choosing it and binding it: choose again
        cluster = LocalCluster(_free_ports(nodes * (1 + replicas)))
        try:
            _start(cluster, workdir, replicas)
            return cluster
        except RuntimeError:
            cluster.stop()
            if attempt == 2:
                raise
    raise RuntimeError("could not start a local Redis Cluster on free ports")


def _start(cluster: LocalCluster, workdir: Path, replicas: int = 0) -> None:
    for port in cluster.ports:
        cluster.procs.append(_server(port, workdir))  # each returns once it accepts connections
    created = subprocess.run(
        [
            "redis-cli", "--cluster", "create",
            *(f"127.0.0.1:{p}" for p in cluster.ports),
            "--cluster-replicas", str(replicas), "--cluster-yes",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )  # fmt: skip
    if created.returncode != 0:
        raise RuntimeError(f"redis-cli --cluster create failed: {created.stdout}{created.stderr}")
    _wait(
        lambda: all("cluster_state:ok" in _cli(p, "CLUSTER", "INFO") for p in cluster.ports),
        "cluster_state:ok",
    )
    if replicas:
        _wait(
            lambda: (
                all(
                    "master_link_status:up" in info
                    for info in (_cli(p, "INFO", "replication") for p in cluster.ports)
                    if "role:slave" in info
                )
                and sum("role:slave" in _cli(p, "INFO", "replication") for p in cluster.ports)
                == len(cluster.ports) - len(cluster.ports) // (1 + replicas)
            ),
            "replicas in sync",
        )


def _server(port: int, workdir: Path) -> subprocess.Popen[bytes]:
    """One cluster-enabled node, returned once it accepts connections."""
    return _redis_server.start(
        port,
        "--cluster-enabled", "yes",
        "--cluster-config-file", str(workdir / f"nodes-{port}.conf"),
        "--cluster-node-timeout", "2000",
        "--dir", str(workdir),
        timeout=_START_TIMEOUT,
    )  # fmt: skip


def cli(port: int, *args: str) -> str:
    """`redis-cli -p port args...`'s output."""
    return _cli(port, *args)


def _wait(check: object, what: str) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)
