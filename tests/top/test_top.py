"""`perfkit top` for real: in tmux against a live app (rows update, sort keys, q), and `--once`."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import eventually, free_port, under_ci

from .app import TOKEN

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """tests/top/app.py served by uvicorn in a subprocess (its own store and queue); stopped by pid."""
    here = tmp_path_factory.mktemp("top")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "tests.top.app:app", "--port", str(port), "--log-level", "warning",
         "--ws", "websockets-sansio"],
        cwd=ROOT, env={**ENV, "TOP_TEST_DIR": str(here)},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:  # another process's state: poll it (bounded)
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/perf/health", timeout=1).status_code == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the app did not start (exit code {proc.poll()})")
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@contextlib.asynccontextmanager
async def traffic(url: str) -> AsyncIterator[httpx.AsyncClient]:
    """Requests to /fast and /slow until the block ends (the app keeps having something to show)."""
    client = httpx.AsyncClient(base_url=url)
    stop = asyncio.Event()

    async def loop() -> None:
        while not stop.is_set():
            await client.get("/fast")
            await client.get("/slow")
            await client.get("/work")

    task = asyncio.create_task(loop())
    try:
        yield client
    finally:
        stop.set()
        await task
        await client.aclose()


class Tmux:
    """A private tmux server (its own socket name): one session running `command`, 140x45."""

    def __init__(self, command: str) -> None:
        self.socket = f"perfkit-top-{os.getpid()}-{os.urandom(3).hex()}"
        self.run("new-session", "-d", "-s", "top", "-x", "140", "-y", "45", command)

    def run(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, env=ENV, check=True
        )
        return done.stdout

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "top")

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", "top", *keys)

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, check=False)


async def shows(term: Tmux, test: Callable[[str], bool], what: str, timeout: float = 15) -> None:
    """Wait until the pane's text passes `test` (tmux owns it: polled, backing off to 0.1 s)."""

    async def check() -> bool:
        return test(await asyncio.to_thread(term.screen))

    await eventually(check, timeout=timeout, what=what, max_interval=0.1)


def row(screen: str, route: str) -> int:
    """The line number of a route's row in the routes table (-1 when absent)."""
    lines = screen.splitlines()
    return next((i for i, line in enumerate(lines) if f"GET {route} " in line), -1)


@pytest.fixture
def tmux() -> None:
    if shutil.which("tmux") is None:
        if under_ci():
            pytest.fail("tmux is not installed (apt-get install tmux)")
        pytest.skip("TOP TMUX TEST SKIPPED: tmux is not installed (apt-get install tmux)")


async def test_top_in_tmux_updates_sorts_and_quits(app_url: str, tmux: None) -> None:
    """In a real terminal: rows appear and update as traffic changes, s/r re-sort, q quits cleanly."""
    top = f"{sys.executable} -m perfkit top {app_url} --token {TOKEN} --interval 0.3"
    command = f"{top}; echo TOP-EXIT=$?; sleep 60"  # the exit code stays on screen
    term = Tmux(command)
    try:
        async with traffic(app_url) as client:
            await shows(term, lambda s: row(s, "/slow") > 0 and row(s, "/fast") > 0, "routes shown", 30)
            screen = term.screen()
            assert "sort: req/s" in screen and row(screen, "/boom") == -1
            for _ in range(5):
                assert (await client.get("/boom")).status_code == 500
            await shows(term, lambda s: row(s, "/boom") > 0, "the new route's row")  # refreshed live
            term.keys("s")
            term.keys("s")  # req/s -> p50 -> p95
            await shows(term, lambda s: "sort: p95 ms" in s, "sorted by p95")
            await shows(term, lambda s: 0 < row(s, "/slow") < row(s, "/fast"), "slowest first")
            term.keys("r")
            await shows(term, lambda s: 0 < row(s, "/fast") < row(s, "/slow"), "reversed")
            screen = term.screen()
            assert "mail" in screen and "processes" in screen and "live" in screen
            term.keys("q")
            await shows(term, lambda s: "TOP-EXIT=0" in s, "top quit with 0")
    finally:
        term.close()


async def test_once_prints_one_frame_for_scripts(app_url: str) -> None:
    """`--once` waits one interval, prints routes with rates, queue depth and job rates, real-time
    connections and processes, exits 0."""
    import websockets

    ws_url = app_url.replace("http://", "ws://") + "/ws"
    async with traffic(app_url), websockets.connect(ws_url):  # one open real-time connection
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "perfkit", "top", app_url, "--token", TOKEN, "--once", "--interval", "0.5",
             "--sort", "p95"],
            capture_output=True, text=True, env=ENV, timeout=60,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "\x1b[?1049h" not in out  # no alternate screen: plain text for a pipe
    assert 0 < row(out, "/slow") < row(out, "/fast")  # --sort p95
    slow = out.splitlines()[row(out, "/slow")]
    assert float(slow.split("│")[2].strip()) > 0  # req/s over the interval
    mail = next(line for line in out.splitlines() if " mail " in line)
    assert mail.split("│")[2].strip() == "3"  # three jobs ready, none run
    work = next(line for line in out.splitlines() if " work " in line)
    assert float(work.split("│")[3]) > 0  # done/s: the app's worker runs what /work enqueues
    assert " live " in out
    summary = next(line for line in out.splitlines() if line.startswith(app_url.removeprefix("http://")))
    assert summary.split()[-1] == "1"  # rt conns


async def test_the_top_endpoint_needs_the_token(app_url: str) -> None:
    """/perf/api/top answers 401 without the token, and its JSON with it."""
    async with httpx.AsyncClient(base_url=app_url) as client:
        assert (await client.get("/perf/api/top")).status_code == 401
        data = (await client.get("/perf/api/top", headers={"authorization": f"Bearer {TOKEN}"})).json()
    assert {"t", "processes", "queues", "snapshot"} <= set(data)
    assert data["queues"]["mail"] == 3
    assert "http_request_duration_seconds" in data["snapshot"]["metrics"] or data["snapshot"]["metrics"]


def test_a_wrong_token_exits_2_with_one_line(app_url: str) -> None:
    """A token the monitor refuses: exit 2 and one line saying it needs the token."""
    done = subprocess.run(
        [sys.executable, "-m", "perfkit", "top", app_url, "--token", "nope", "--once", "--interval", "0.1"],
        capture_output=True, text=True, env=ENV, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "needs the monitor token" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_store_source_reads_the_workers_directly(
    app_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """`--store sqlite:///…` reads the processes' snapshots from the monitor store, no HTTP at all."""
    store = next(tmp_path_factory.getbasetemp().glob("top*/monitor.db"))
    httpx.get(app_url + "/slow")
    done = subprocess.run(
        [sys.executable, "-m", "perfkit", "top", "--store", f"sqlite:///{store}", "--once",
         "--interval", "0.1"],
        capture_output=True, text=True, env=ENV, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "processes" in done.stdout and " live " in done.stdout


async def test_a_fleet_shows_each_app_and_which_one_is_down(app_url: str) -> None:
    """Several URLs: an app column on every table, and an unreachable app shown as such, not fatal."""
    other = app_url.replace("127.0.0.1", "localhost")  # the same server under a second name
    down = f"http://127.0.0.1:{free_port()}"
    async with traffic(app_url):
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "perfkit", "top", app_url, other, down, "--token", TOKEN, "--once",
             "--interval", "0.3"],
            capture_output=True, text=True, env=ENV, timeout=60,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    host = app_url.removeprefix("http://")
    assert any(line.startswith(host) for line in lines) and any(
        line.startswith("localhost:") for line in lines
    )
    assert any(down.removeprefix("http://") in line and "unreachable" in line for line in lines)
    slow_rows = [line for line in lines if "GET /slow" in line]
    assert len(slow_rows) == 2 and {row.split("│")[1].strip() for row in slow_rows} == {host, other[7:]}


def test_app_serves_an_asgi_app_in_process_and_watches_it() -> None:
    """`--app module:attr`: top serves the app on a free port itself and draws its own process."""
    done = subprocess.run(
        [sys.executable, "-m", "perfkit", "top", "--app", "tests.doctor.apps:open_monitor", "--once",
         "--interval", "0.1"],
        capture_output=True, text=True, env=ENV, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[2].startswith("127.0.0.1:") and " live " in done.stdout
