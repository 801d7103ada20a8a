"""The demo's live page (/live) in headless Chromium against a real uvicorn process: a status change
made in one tab shows in the other without a reload, and an export job's progress follows live."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
import redis
from sqlalchemy import create_engine

from perfkit.demo import processes
from perfkit.demo.app.seed import seed
from perfkit.demo.settings import DemoSettings
from tests.conftest import REDIS_URL, free_port, require_redis

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = Path(os.environ.get("PERFKIT_LIVE_SCREENSHOT", "/tmp/perfkit-live.png"))

pytestmark = [
    pytest.mark.sqlite,
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK), reason=f"BROWSER TESTS SKIPPED: no {CHROMIUM}"),
]


LIVE_REDIS_DB = 12  # the demo's fixed key names on Redis live in a database of this test's own


Start = Callable[[], Awaitable[None]]  # starts the job worker


def _serve_in_process(tmp_path: Path) -> Iterator[tuple[str, Start]]:
    """The seeded demo under uvicorn (tests/demo/_live_app.py: memory:// hub, worker in-process)."""
    settings = DemoSettings.choose(tmp_path, token="t")
    port = free_port()
    env = {**os.environ, **settings.environ(), "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "tests.demo._live_app:create", "--host", "127.0.0.1",
         "--port", str(port), "--ws", "websockets-sansio", "--timeout-graceful-shutdown", "3"],
        cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    log: deque[str] = deque(maxlen=100)
    assert proc.stderr is not None
    try:
        for line in proc.stderr:
            log.append(line)
            if "Uvicorn running on" in line:
                threading.Thread(target=lambda: log.extend(proc.stderr or ()), daemon=True).start()
                break
        else:
            raise AssertionError(f"the demo did not start: {''.join(log)}")
        base = f"http://127.0.0.1:{port}"

        async def start() -> None:
            async with httpx.AsyncClient(timeout=10) as client:
                (await client.post(f"{base}/test/worker")).raise_for_status()

        yield base, start
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        proc.stderr.close()


def _serve_apart(tmp_path: Path, redis_url: str | None) -> Iterator[tuple[str, Start]]:
    """The demo as `perfkit demo` runs it: the app and a `perfkit worker`, two processes. With Redis
    their hubs meet there (the worker's job events reach the app's pages); embedded they do not."""
    url = redis_url
    settings = DemoSettings.choose(tmp_path, redis=url, token="t")
    env = {**os.environ, **settings.environ(), "PYTHONPATH": str(ROOT / "src")}
    port = free_port()
    children: list[processes.Child | None] = []
    client = redis.Redis.from_url(url) if url else None
    try:
        app = processes.start_app(port, env, tmp_path / "app.log")
        children.append(app)
        base = f"http://127.0.0.1:{port}"
        processes.wait_until_up(app, base + "/perf/health", timeout=30)

        async def start() -> None:
            children.append(processes.start_worker(env, tmp_path / "worker.log", concurrency=1))

        yield base, start
    finally:
        processes.stop_all(children)
        if client is not None:
            for key in client.scan_iter(count=1000):  # this database is this test's alone
                client.delete(key)
            client.close()


@pytest.fixture(params=["in-process", "embedded", pytest.param("redis", marks=pytest.mark.redis)])
def live_app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Start]]:
    """The seeded demo, served: memory:// hub with the worker in the app's process, the embedded
    default (worker apart: job state read, not pushed), or on Redis (worker apart, events pushed)."""
    seed(create_engine(f"sqlite:///{tmp_path}/demo.db"), scale=0.01)
    if request.param == "in-process":
        yield from _serve_in_process(tmp_path)
    elif request.param == "embedded":
        yield from _serve_apart(tmp_path, None)
    else:
        require_redis()
        yield from _serve_apart(tmp_path, urlunsplit(urlsplit(REDIS_URL)._replace(path=f"/{LIVE_REDIS_DB}")))


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        chromium = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield chromium
        finally:
            await chromium.close()


async def test_live_page_follows_tickets_and_job_progress(
    live_app: tuple[str, Start], browser: Any, request: pytest.FixtureRequest
) -> None:
    """Two tabs on /live: a status changed in the first shows in the second (pushed, not polled); the
    export job's events and completion arrive live (read from /jobs/<id> on the embedded default, where
    the worker's hub cannot reach the app's), with a link to the file; no console errors."""
    variant = request.node.callspec.id
    base, start_worker = live_app
    errors: list[str] = []
    tabs = []
    for _ in range(2):
        tab = await browser.new_page(viewport={"width": 1000, "height": 820})
        tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        tab.on("pageerror", lambda e: errors.append(str(e)))
        await tab.goto(f"{base}/live?org=1{'&jobs=live' if variant == 'in-process' else ''}")
        await tab.wait_for_selector("#conn.open", timeout=10_000)
        await tab.wait_for_selector("#tickets tbody tr", timeout=10_000)
        tabs.append(tab)
    first, second = tabs
    try:
        ticket = await first.get_attribute("#tickets tbody tr", "data-ticket")
        before = await second.get_attribute(f'tr[data-ticket="{ticket}"]', "data-status")
        await first.click(f'tr[data-ticket="{ticket}"] button.advance')
        await second.wait_for_function(
            "([id, old]) => document.querySelector(`tr[data-ticket='${id}']`).dataset.status !== old",
            arg=[ticket, before],
            timeout=10_000,
        )
        assert "is now" in await second.inner_text("#events")
        await first.click("#export")
        await first.wait_for_function(  # the page follows the job: now let it run
            "() => Object.keys(rt.positions).some((c) => c.startsWith('job:'))", timeout=10_000
        )
        await start_worker()
        await first.wait_for_selector("#job-status a[href$='export.csv']", timeout=30_000)
        assert await first.get_attribute("#job-progress", "value") == "1"
        events = await first.inner_text("#events")
        if variant != "embedded":  # pushed by the job's own process (embedded: read from /jobs/<id>)
            assert "export_report succeeded" in events, events
        assert "live (ws)" in await first.inner_text("#conn")
        await first.screenshot(path=str(SCREENSHOT.with_suffix(f".{variant}.png")))
    finally:
        for tab in tabs:
            await tab.close()
    assert errors == [], errors


async def test_the_live_page_reports_its_web_vitals(
    tmp_path: Path, browser: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The live page loads the app's web-vitals (npm) and perfkit's snippet: its page view's vitals reach
    the demo's report under the route `/live` once the page is hidden."""
    from tests import _npm

    monkeypatch.setenv("PERFKIT_DEMO_WEB_VITALS", str(_npm.package("web-vitals", "^6")))
    seed(create_engine(f"sqlite:///{tmp_path}/demo.db"), scale=0.01)
    served = _serve_in_process(tmp_path)
    base, _start = next(served)
    try:
        page = await browser.new_page()
        await page.goto(f"{base}/live?org=1")
        await page.wait_for_function("window.perfkitRum && window.perfkitRum.pending() > 0")  # FCP queued
        await page.goto("about:blank")  # hidden: the beacon leaves

        async def reported() -> bool:
            async with httpx.AsyncClient() as client:
                response = await client.get(f"{base}/perf/report", headers={"authorization": "Bearer t"})
            pages = response.json()["web_vitals"]["pages"]
            return any(p["route"] == "/live" and "FCP" in p["vitals"] for p in pages)

        from tests.conftest import eventually

        await eventually(reported, timeout=20, what="the live page's vitals in the report", max_interval=0.5)
    finally:
        served.close()
