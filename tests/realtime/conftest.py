"""Real uvicorn processes serving tests/realtime/_app.py, on free ports, stopped by pid."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.conftest import REDIS_URL, free_port, require_redis

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 20.0


@dataclass
class Server:
    proc: subprocess.Popen[str]
    port: int
    env: dict[str, str]
    log: deque[str] = field(default_factory=lambda: deque(maxlen=200))

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def stats(self) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=5) as client:
            return dict((await client.get(f"{self.http}/stats")).json())

    async def publish(self, channel: str, *many: Any) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.post(
                f"{self.http}/publish", json={"channel": channel, "many": list(many)}
            )
            response.raise_for_status()
            return dict(response.json())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def kill(self) -> None:
        """SIGKILL: the process dies without closing anything (a crashed worker)."""
        self.proc.kill()
        self.proc.wait(timeout=5)


def start_server(
    url: str,
    port: int | None = None,
    origins: list[str] | None = None,
    app: str = "tests.realtime._app:app",
    **settings: Any,
) -> Server:
    """One uvicorn process serving `app` (a hub on `url`); returns once it listens."""
    port = port or free_port()
    env = {**os.environ, "RT_URL": url, "RT_SETTINGS": json.dumps(settings), "PYTHONPATH": str(ROOT / "src")}
    if origins is not None:
        env["RT_ORIGINS"] = json.dumps(origins)
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "info", "--ws", "websockets-sansio",
         "--timeout-graceful-shutdown", "3"],
        cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    server = Server(proc, port, env)
    assert proc.stderr is not None
    for line in proc.stderr:
        server.log.append(line)
        if "Uvicorn running on" in line:
            threading.Thread(target=_drain, args=(proc.stderr, server.log), daemon=True).start()
            return server
    proc.wait(timeout=10)
    raise RuntimeError(f"uvicorn on {port} exited with {proc.returncode}: {''.join(server.log)}")


def _drain(stream: Any, log: deque[str]) -> None:
    with stream:
        for line in stream:
            log.append(line)


@pytest.fixture
def prefix() -> Iterator[str]:
    """A Redis key prefix of this test's own; its keys are deleted afterwards."""
    name = f"t-rt-{uuid.uuid4().hex[:10]}:"
    yield name
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(f"{name}*", count=1000))
        if keys:
            client.delete(*keys)
    except redis.ConnectionError:
        pass
    finally:
        client.close()


@pytest.fixture
def redis_url(prefix: str) -> str:
    require_redis()
    return f"{REDIS_URL}?prefix={prefix}"


@pytest.fixture
def servers() -> Iterator[Callable[..., Server]]:
    """Starts uvicorn processes (`servers(url, **settings)`), every one stopped at the end."""
    started: list[Server] = []

    def start(url: str, **options: Any) -> Server:
        server = start_server(url, **options)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
        if server.proc.stderr is not None:
            server.proc.stderr.close()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client
