"""The dashboard in real headless Chromium (Debian's, driven by Playwright) against a uvicorn server."""

from __future__ import annotations

import asyncio
import gzip
import os
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests._browser import CHROMIUM, chromium

from .conftest import TOKEN, Env, serve

pytestmark = pytest.mark.skipif(
    not os.access(CHROMIUM, os.X_OK),
    reason=f"BROWSER TESTS SKIPPED: {CHROMIUM} is missing; `apt-get install -y chromium` (.ci/run does it)",
)


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """Headless Chromium; closed after the test."""
    async with chromium() as browser:
        yield browser


def console_errors(page: Any) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return errors


async def test_dashboard_draws_live_data_and_cancels_a_job(env: Env, browser: Any) -> None:
    """No console errors, charts draw live traffic, the report fills in, Cancel cancels a queued job."""

    @env.jobs.task(queue="email")
    async def send_email(ctx: Any, to: str) -> str:
        return to

    queued = await send_email.enqueue("a@example.com")  # no worker runs: it stays queued
    async with serve(env.app) as base, httpx.AsyncClient(base_url=base) as client:
        stop = asyncio.Event()

        async def traffic() -> None:
            while not stop.is_set():
                await client.get("/tickets")
                await client.get("/big")
                await asyncio.sleep(0.05)  # a steady trickle of requests for the live charts

        load = asyncio.create_task(traffic())
        page = await browser.new_page()
        errors = console_errors(page)
        try:
            await page.goto(f"{base}/perf/#token={TOKEN}")
            await page.wait_for_selector("#main:not([hidden])", timeout=10_000)
            await page.wait_for_function(
                """() => {
                    const last = document.querySelector('#chart-throughput .last').textContent;
                    const svg = document.querySelector('#chart-throughput svg');
                    return Number(svg.dataset.points) >= 2 && parseFloat(last.split(' ')[1]) > 0;
                }""",
                timeout=15_000,
            )
            points = await page.get_attribute("#chart-latency polyline.s1", "points")
            assert points and len(points.split()) >= 1
            assert "#token" not in page.url
            await page.wait_for_selector("#routes tbody tr", timeout=10_000)
            routes = await page.inner_text("#routes tbody")
            assert "GET /tickets" in routes
            recs = await page.inner_text("#recommendations")
            assert "N+1 on Ticket.comments" in recs
            slow = await page.inner_text("#slow")
            assert "SELECT" in slow
            # grouped: one row per statement shape (the traffic repeats two shapes many times)
            shown = await page.eval_on_selector_all(
                "#slow details.group code", "els => els.map(e => e.textContent)"
            )
            assert shown and len(shown) == len(set(shown)), shown
            assert "N+1 on Ticket.comments" in await page.inner_text("#nplusone")
            score = await page.inner_text("#score-value")
            assert score.isdigit() and 0 <= int(score) <= 100
            row = f'tr[data-job="{queued.id}"]'
            await page.click(f"{row} button.cancel")
            await page.wait_for_function(
                f"""() => document.querySelector('{row} .job-status')?.textContent === 'cancelled'""",
                timeout=10_000,
            )
        finally:
            stop.set()
            await load
            await page.close()
    job = await env.jobs.get(queued.id)
    assert job is not None and job.status == "cancelled"
    assert errors == [], errors


async def test_dashboard_enforces_the_token(env: Env, browser: Any) -> None:
    """Without the token the page shows only the login; a wrong token is refused; the right one opens it."""
    async with serve(env.app) as base:
        page = await browser.new_page()
        try:
            await page.goto(f"{base}/perf/")
            await page.wait_for_selector("#login:not([hidden])")
            assert await page.is_hidden("#main")
            await page.fill("#token", "not-the-token")
            await page.click("#login button")
            await page.wait_for_function(
                "() => document.querySelector('#login-reason').textContent === 'The token was refused.'"
            )
            assert await page.is_hidden("#main")
            assert await page.inner_text("#score-value") == "\u2013"  # the placeholder dash
            await page.fill("#token", TOKEN)
            await page.click("#login button")
            await page.wait_for_selector("#main:not([hidden])")
            await page.wait_for_function(
                "() => /^\\d+$/.test(document.querySelector('#score-value').textContent)"
            )
        finally:
            await page.close()


async def test_assets_are_small_immutable_and_revalidated(env: Env) -> None:
    """Page + script + stylesheet are <= 100 kB gzipped; hashed assets are immutable; ETags give 304."""
    page = await env.client.get("/perf/", headers={"accept-encoding": "gzip"})
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-cache"
    assets = env.monitor.mount(env.app).perf.assets
    assert assets.total_gzipped() <= 100_000
    script = next(p for p in assets.files if p.endswith(".js"))
    response = await env.client.get(f"/perf{script}", headers={"accept-encoding": "gzip"})
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert response.headers["content-encoding"] == "gzip"
    assert int(response.headers["content-length"]) == len(assets.files[script].gzipped)
    assert gzip.decompress(assets.files[script].gzipped) == assets.files[script].body
    again = await env.client.get(f"/perf{script}", headers={"if-none-match": response.headers["etag"]})
    assert again.status_code == 304
    assert (await env.client.get("/perf/assets/app.0000.js")).status_code == 404


async def test_job_list_pages_through_ten_thousand_jobs(env: Env) -> None:
    """10,000 queued jobs are listed 50 at a time with a cursor: the page never holds more than one page."""

    @env.jobs.task(queue="bulk")
    async def noop(ctx: Any, i: int) -> int:
        return i

    for start in range(0, 10_000, 500):
        await asyncio.gather(*(noop.enqueue(i) for i in range(start, start + 500)))
    headers = {"authorization": f"Bearer {TOKEN}"}
    first = (await env.client.get("/perf/api/jobs?limit=50", headers=headers)).json()
    assert len(first["items"]) == 50 and first["cursor"]
    second = (
        await env.client.get(f"/perf/api/jobs?limit=50&cursor={first['cursor']}", headers=headers)
    ).json()
    assert len(second["items"]) == 50
    assert not {j["id"] for j in first["items"]} & {j["id"] for j in second["items"]}
