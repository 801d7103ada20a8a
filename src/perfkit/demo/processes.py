"""The demo's child processes (the app under uvicorn, a job worker): started, awaited, stopped by pid.

Each child runs in its own session (a Ctrl-C in the terminal reaches only the demo, which then stops
them gracefully), and on Linux asks the kernel for SIGTERM when the demo dies: even a demo killed with
SIGKILL leaves nothing running.
"""

from __future__ import annotations

import contextlib
import ctypes
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


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the parent exits, however it exits (Linux prctl)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Child:
    """One child process whose output goes to a log file (shown if it fails to start)."""

    def __init__(self, name: str, argv: Sequence[str], env: dict[str, str], log: Path) -> None:
        self.name, self.log = name, log
        self._log_file = log.open("wb")
        self.proc = subprocess.Popen(  # noqa: S603  # argv is ours: sys.executable and fixed modules
            list(argv),
            env=env,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # called while the demo runs no other thread
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
        try:
            if self.proc.poll() is None:
                os.kill(self.proc.pid, signal.SIGTERM)
                try:
                    self.proc.wait(grace)
                except subprocess.TimeoutExpired:
                    os.kill(self.proc.pid, signal.SIGKILL)
                    self.proc.wait()
        finally:
            self._log_file.close()


def stop_all(children: list[Child | None]) -> None:
    """Stop every child even if stopping one fails; no signal interrupts this (a second Ctrl-C would
    otherwise leave the rest running)."""
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        for child in children:
            if child is not None:
                with contextlib.suppress(OSError):  # already gone
                    child.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


DJANGO_SETTINGS = "perfkit.demo.django_app.settings"  # `perfkit demo --django`: the demo as a Django project


def start_app(port: int, env: dict[str, str], log: Path, *, django: bool = False) -> Child:
    """The FastAPI app, or with `django` the Django project under ASGI (`get_asgi_application`)."""
    if django:
        env = {**env, "DJANGO_SETTINGS_MODULE": DJANGO_SETTINGS}
        target = ["perfkit.demo.django_app.asgi:application", "--lifespan", "off"]
    else:
        target = ["--factory", "perfkit.demo.app.main:create_from_env"]
    argv = [
        sys.executable, "-m", "uvicorn", *target,
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    return Child("app", argv, env, log)


def start_worker(env: dict[str, str], log: Path, concurrency: int = 4, *, django: bool = False) -> Child:
    """`perfkit worker` on the demo's queue, or with `django` the project's `perfkit_worker` command
    (Django set up first, then the tasks imported from the installed apps)."""
    if django:
        command = ["django", "perfkit_worker", f"--settings={DJANGO_SETTINGS}"]
    else:
        command = ["perfkit", "worker", "perfkit.demo.app.tasks:jobs"]
    argv = [
        sys.executable, "-m", *command,
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
