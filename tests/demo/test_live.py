"""The demo's live page (/live) in headless Chromium against a real uvicorn process: a status change
made in one tab shows in the other without a reload, and an export job's progress follows live."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections import deque
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine

from perfkit.demo.app.seed import seed
from perfkit.demo.settings import DemoSettings
from tests.conftest import free_port

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


@pytest.fixture
def live_app(tmp_path: Path) -> Iterator[str]:
    """The seeded demo under uvicorn (tests/demo/_live_app.py) on a free port; stopped by pid."""
    seed(create_engine(f"sqlite:///{tmp_path}/demo.db"), scale=0.01)
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
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        proc.stderr.close()


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        chromium = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield chromium
        finally:
            await chromium.close()


async def test_live_page_follows_tickets_and_job_progress(live_app: str, browser: Any) -> None:
    """Two tabs on /live: a status changed in the first shows in the second (pushed, not polled); the
    export job's progress and completion arrive live, with a link to the file; no console errors."""
    errors: list[str] = []
    tabs = []
    for _ in range(2):
        tab = await browser.new_page(viewport={"width": 1000, "height": 820})
        tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        tab.on("pageerror", lambda e: errors.append(str(e)))
        await tab.goto(f"{live_app}/live?org=1")
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
        await first.wait_for_selector("#job-status a[href$='export.csv']", timeout=30_000)
        assert await first.get_attribute("#job-progress", "value") == "1"
        assert "progress" in await first.inner_text("#events") or "succeeded" in await first.inner_text(
            "#events"
        )
        assert "live (ws)" in await first.inner_text("#conn")
        await first.screenshot(path=str(SCREENSHOT), full_page=True)
    finally:
        for tab in tabs:
            await tab.close()
    assert errors == [], errors
