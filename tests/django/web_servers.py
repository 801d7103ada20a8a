"""Start and stop the server tests' processes (gunicorn, uvicorn) on 127.0.0.1, by pid."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
TOKEN = {"Authorization": "Bearer server-token"}


def wait_up(base: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Poll liveness until the server answers (the process owns that state: nothing to await)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the server exited with {proc.returncode}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{base}/perf/health", timeout=2).status_code == 200:
                return
        time.sleep(0.05)
    raise AssertionError(f"{base} not up within {timeout}s")


@contextlib.contextmanager
def serve(args: list[str], port: int, env: dict[str, str]) -> Iterator[str]:
    """Run `python -m <args>` with the project's settings; yields its base URL; stops it by pid."""
    full = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.django.server_settings",
            "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}", **env}  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, env=full)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_up(base, proc)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def metric(text: str, name: str, labels: dict[str, str]) -> float | None:
    """One sample of a Prometheus text exposition."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None
