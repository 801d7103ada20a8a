"""The demo's child processes (the app under uvicorn, a job worker): started, awaited, stopped by pid."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from perfkit.errors import PerfkitError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Child:
    """One child process whose output goes to a log file (shown if it fails to start)."""

    def __init__(self, name: str, argv: Sequence[str], env: dict[str, str], log: Path) -> None:
        self.name, self.log = name, log
        self._log_file = log.open("wb")
        self.proc = subprocess.Popen(  # noqa: S603  # argv is ours: sys.executable and fixed modules
            list(argv), env=env, stdout=self._log_file, stderr=subprocess.STDOUT, start_new_session=True
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def failed(self) -> str | None:
        """None while running; otherwise why it stopped, with the end of its log."""
        code = self.proc.poll()
        if code is None:
            return None
        tail = self.log.read_text(errors="replace").strip().splitlines()[-15:]
        return f"{self.name} exited with code {code}:\n  " + "\n  ".join(tail)

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM (graceful: uvicorn drains, the worker hands running jobs back), then SIGKILL."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._log_file.close()


def start_app(port: int, env: dict[str, str], log: Path) -> Child:
    argv = [
        sys.executable, "-m", "uvicorn", "--factory", "perfkit.demo.app.main:create_from_env",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    return Child("app", argv, env, log)


def start_worker(env: dict[str, str], log: Path, concurrency: int = 4) -> Child:
    argv = [
        sys.executable, "-m", "perfkit", "worker", "perfkit.demo.app.tasks:jobs",
        "--queues", "demo", "--concurrency", str(concurrency), "--grace", "10", "--log-level", "WARNING",
    ]  # fmt: skip
    return Child("worker", argv, env, log)


def wait_until_up(child: Child, url: str, timeout: float = 60.0) -> None:
    """Poll the app's liveness endpoint until it answers; a child that dies fails at once with its log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (why := child.failed()) is not None:
            raise PerfkitError(why)
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)  # a server coming up has nothing to await: poll with a deadline
    raise PerfkitError(f"{child.name} did not answer {url} within {timeout:g}s (log: {child.log})")
