"""Fixtures for the bench tests: a real HTTP server on 127.0.0.1 in a subprocess, stopped by pid."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.request import urlopen

import pytest

from perfkit.cli import main

SERVER = Path(__file__).with_name("_server.py")


class Server:
    def __init__(self, proc: subprocess.Popen[bytes], port: int) -> None:
        self.proc = proc
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    def count(self) -> int:
        """Requests the server has seen (its own counter, excluding this query)."""
        with urlopen(f"{self.url}/__count", timeout=5) as r:  # noqa: S310 - a loopback URL we built
            return int(r.read())


@pytest.fixture
def start_server() -> Iterator[Callable[..., Server]]:
    """Start test servers (optionally stalling); each is terminated by pid at the end of the test."""
    started: list[subprocess.Popen[bytes]] = []

    def start(*extra: str) -> Server:
        proc = subprocess.Popen([sys.executable, str(SERVER), *extra], stdout=subprocess.PIPE)
        started.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline()  # the server prints its port once it listens; b"" if it died
        proc.stdout.close()
        if not line.strip().isdigit():
            raise RuntimeError(f"test server did not start: {line!r}")
        return Server(proc, int(line))

    yield start
    for proc in started:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def server(start_server: Callable[..., Server]) -> Server:
    return start_server()


def bench(tmp_path: Path, *argv: str) -> tuple[int, dict[str, object]]:
    """Run `perfkit bench ... --json FILE -q`; (exit code, report or {} when none was written)."""
    out = tmp_path / f"report{time.monotonic_ns()}.json"
    code = main(["bench", *argv, "-q", "--json", str(out)])
    return code, (json.loads(out.read_text()) if out.exists() else {})


def bench_process(
    tmp_path: Path, *argv: str, limit: float = 30.0
) -> tuple[int, dict[str, Any], str, str, float]:
    """Run `perfkit bench ... --json FILE` as a real process (no terminal); killed after `limit` s.

    Returns (exit code, report or {}, stdout, stderr, wall seconds).
    """
    out = tmp_path / f"report{time.monotonic_ns()}.json"
    cmd = [sys.executable, "-m", "perfkit.cli", "bench", *argv, "--json", str(out)]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        stdout, stderr = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
        pytest.fail(f"perfkit bench still running after {limit:g}s: {' '.join(argv)}")
    wall = time.monotonic() - t0
    doc: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {}
    return proc.returncode, doc, stdout.decode(), stderr.decode(), wall
