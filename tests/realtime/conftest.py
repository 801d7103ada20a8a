"""Real uvicorn processes serving tests/realtime/_app.py, on free ports, stopped by pid."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import uvicorn

from tests import _redis_server
from tests.conftest import REDIS_URL, free_port, require_redis, service_missing

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 20.0


class Server:
    """A uvicorn server of the test app: its port, and the routes the tests use."""

    port: int

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
        raise NotImplementedError


@dataclass
class ProcessServer(Server):
    """uvicorn in a process of its own (`python -m uvicorn`), stopped by pid."""

    proc: subprocess.Popen[str]
    port: int
    log: deque[str] = field(default_factory=lambda: deque(maxlen=200))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self.proc.stderr is not None:
            self.proc.stderr.close()

    def kill(self) -> None:
        """SIGKILL: the process dies without closing anything (a crashed worker)."""
        self.proc.kill()
        self.proc.wait(timeout=5)


class ThreadServer(Server):
    """uvicorn in a thread of the test process, on its own event loop and sockets (its code counts in
    the coverage of the test run, which a subprocess's does not)."""

    def __init__(self, url: str, origins: list[str] | None, settings: dict[str, Any]) -> None:
        from tests.realtime._app import build

        self.port = free_port()
        config = uvicorn.Config(
            build(url, settings, origins), host="127.0.0.1", port=self.port, ws="websockets-sansio",
            log_level="warning", lifespan="on", timeout_graceful_shutdown=3,
        )  # fmt: skip
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name=f"uvicorn-{self.port}", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self.server.started:  # uvicorn's own flag: set once it listens
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn in a thread on {self.port} did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def start_server(
    url: str,
    port: int | None = None,
    origins: list[str] | None = None,
    app: str = "tests.realtime._app:from_environment",
    **settings: Any,
) -> ProcessServer:
    """One uvicorn process serving the app factory `app` (a hub on `url`); returns once it listens."""
    port = port or free_port()
    env = {**os.environ, "RT_URL": url, "RT_SETTINGS": json.dumps(settings), "PYTHONPATH": str(ROOT / "src")}
    if origins is not None:
        env["RT_ORIGINS"] = json.dumps(origins)
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", app, "--factory",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "info", "--ws", "websockets-sansio",
         "--timeout-graceful-shutdown", "3"],
        cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    server = ProcessServer(proc, port)
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


@pytest.fixture(params=["process", "thread"])
def servers(request: pytest.FixtureRequest) -> Iterator[Callable[..., Server]]:
    """Starts uvicorn servers (`servers(url, **settings)`), each in a process of its own or in a thread
    of the test process (both real uvicorn on real sockets); every one stopped at the end."""
    started: list[Server] = []

    def start(url: str, origins: list[str] | None = None, **settings: Any) -> Server:
        if request.param == "thread":
            server: Server = ThreadServer(url, origins, settings)
        else:
            server = start_server(url, origins=origins, **settings)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def process_servers() -> Iterator[Callable[..., ProcessServer]]:
    """Like `servers`, processes only: for tests that kill, freeze or count per process."""
    started: list[ProcessServer] = []

    def start(url: str, **options: Any) -> ProcessServer:
        server = start_server(url, **options)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


class OwnRedis:
    """redis-server on a free port; `restart()` stops it (SIGTERM: the AOF is flushed) and starts it again."""

    def __init__(self, folder: Path, persistent: bool) -> None:
        self.port = free_port()
        self.folder = folder
        self.extra = ["--dir", str(folder)]
        if persistent:
            self.extra += ["--appendonly", "yes", "--appendfsync", "always"]
        self.proc: subprocess.Popen[bytes] | None = _redis_server.start(self.port, *self.extra)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None

    def start(self) -> None:
        self.proc = _redis_server.start(self.port, *self.extra)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[Callable[[bool], OwnRedis]]:
    made: list[OwnRedis] = []

    def make(persistent: bool) -> OwnRedis:
        try:
            server = OwnRedis(tmp_path, persistent)
        except FileNotFoundError:
            service_missing("redis-server is not installed (apt-get install redis-server)")
        made.append(server)
        return server

    yield make
    for server in made:
        server.stop()
