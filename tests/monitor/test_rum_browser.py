"""The served RUM snippet with the real web-vitals library (npm, cached outside the repository) in headless
Chromium, against a uvicorn server: a page with a layout shift, a slow LCP image and a long task reports
its vitals, the collector aggregates them per route, rates them as web-vitals itself does, and the
dashboard shows them."""

from __future__ import annotations

import asyncio
import os
import struct
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import Route

import perfkit
from perfkit.metrics import Collector
from perfkit.monitor import MonitorConfig
from perfkit.monitor.rum import RumConfig
from tests import _npm
from tests._browser import CHROMIUM, chromium
from tests.conftest import eventually, free_port

TOKEN = "rum-browser-token"
LCP_DELAY = 2.7  # seconds the hero image takes: LCP needs improvement (2.5 s < LCP <= 4 s)
LONG_TASK_MS = 600  # the click handler's busy loop: INP poor (> 500 ms)
SHIFT_PX = 400  # content pushed down by 400 px of a 1280 px wide viewport: CLS about 0.31, poor

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(
        not os.access(CHROMIUM, os.X_OK),
        reason=f"BROWSER TESTS SKIPPED: {CHROMIUM} is missing; `apt-get install -y chromium` (.ci/run)",
    ),
]

PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>shop</title>
<style>body{margin:0;font:16px sans-serif} #content{height:500px;background:#eee}
#hero{display:block}</style></head><body>
<button id="buy" type="button">buy</button>  <!-- in the flow: Chromium times no event on a fixed one -->
<div id="content"><p>Products</p><img id="hero" src="/hero.png" width="900" height="450" alt="hero"></div>
<script type="module">
import * as webVitals from "/vendor/web-vitals.attribution.js";
import { start } from "/perf/rum.js";
window.__vitals = {};  // what web-vitals itself reports, to compare with the collector's aggregation
for (const on of ["onLCP", "onINP", "onCLS", "onFCP", "onTTFB"])
  webVitals[on]((m) => { window.__vitals[m.name] = { value: m.value, rating: m.rating }; },
                { reportAllChanges: true });
start(webVitals);
requestAnimationFrame(() => requestAnimationFrame(() => setTimeout(() => {
  const ad = document.createElement("div");
  ad.style.height = "SHIFTpx";
  document.body.insertBefore(ad, document.getElementById("content"));  // a layout shift, no input
  window.__shifted = true;
}, 100)));
document.getElementById("buy").addEventListener("click", (event) => {
  const end = performance.now() + LONGTASK;  // a long task behind the interaction
  while (performance.now() < end) {}
  event.target.textContent = "bought";
});
</script></body></html>""".replace("SHIFT", str(SHIFT_PX)).replace("LONGTASK", str(LONG_TASK_MS))


def png(width: int, height: int) -> bytes:
    """A solid PNG (the LCP image), made here so the test needs no image library."""
    raw = b"".join(b"\x00" + b"\x30\x60\x90" * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def make_app(web_vitals: Path) -> Any:
    image = png(900, 450)

    async def page(request: Request) -> Response:
        return HTMLResponse(PAGE)

    async def hero(request: Request) -> Response:
        await asyncio.sleep(LCP_DELAY)
        return Response(image, media_type="image/png", headers={"cache-control": "no-store"})

    async def vendor(request: Request) -> Response:
        return FileResponse(web_vitals / "dist" / "web-vitals.attribution.js", media_type="text/javascript")

    app = Starlette(routes=[Route("/shop/{item}", page), Route("/hero.png", hero),
                            Route("/vendor/web-vitals.attribution.js", vendor)])  # fmt: skip
    config = MonitorConfig(token=TOKEN, url="memory://", rum=RumConfig(settle="0.3s"))
    return perfkit.instrument(app, monitor=config, collector=Collector())


@dataclass
class Served:
    base: str


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    """uvicorn serving the page app in this event loop, on a free port; stopped after the test."""
    folder = _npm.package("web-vitals", "^6")
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(make_app(folder), host="127.0.0.1", port=port, log_level="warning")
    )
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        return server.started

    await eventually(started, timeout=10, what="uvicorn started")
    try:
        yield Served(f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """Headless Chromium (Debian's), closed after the test."""
    async with chromium() as browser:
        yield browser


async def report(base: str) -> dict[str, Any]:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{base}/perf/report", headers={"authorization": f"Bearer {TOKEN}"})
        data: dict[str, Any] = response.json()
        return data


async def test_real_page_vitals_arrive_aggregated_and_rated(served: Served, browser: Any) -> None:
    """LCP (slow image), INP (long task), CLS (shift), FCP and TTFB arrive under `/shop/{item}` with the
    values and ratings web-vitals computed in the page; the dashboard shows them, coloured by rating."""
    context = await browser.new_context(viewport={"width": 1280, "height": 720})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(f"{served.base}/shop/shoes")
    await page.wait_for_function(
        "window.__shifted && document.getElementById('hero').complete", timeout=15000
    )
    await page.evaluate(
        "new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))"
    )  # painted
    await page.click("#buy")
    await page.wait_for_function("['LCP', 'INP', 'CLS', 'FCP', 'TTFB'].every((n) => window.__vitals[n])")
    own = await page.evaluate("window.__vitals")  # web-vitals' values so far (reportAllChanges)
    await page.goto("about:blank")  # the page is hidden: web-vitals reports, the snippet sends its beacon

    async def arrived() -> bool:
        pages = (await report(served.base))["web_vitals"]["pages"]
        return len(pages) == 1 and len(pages[0]["vitals"]) == 5

    await eventually(arrived, timeout=10, what="the five vitals aggregated", max_interval=0.2)
    vitals = (await report(served.base))["web_vitals"]
    shop = vitals["pages"][0]
    assert (shop["route"], shop["device"], shop["views"]) == ("/shop/{item}", "desktop", 1)
    got = {name: (v["p75"], v["rating"]) for name, v in shop["vitals"].items()}
    for name, value in own.items():  # one view: its p75 is its value; the rating is web-vitals' own
        assert got[name][1] == value["rating"], (name, got, own)
        assert got[name][0] == pytest.approx(value["value"], abs=0.1 if name != "CLS" else 0.001), (
            name,
            got,
            own,
        )
    assert LCP_DELAY * 1000 < got["LCP"][0] < 4000 and got["LCP"][1] == "needs-improvement", got
    assert got["INP"][0] >= LONG_TASK_MS and got["INP"][1] == "poor", got
    assert 0.25 < got["CLS"][0] < 0.5 and got["CLS"][1] == "poor", got
    assert got["FCP"][1] == "good" and got["TTFB"][1] == "good", got
    server, rest = shop["ttfb_server_p75_ms"], shop["ttfb_rest_p75_ms"]
    assert server is not None and rest is not None and server + rest == pytest.approx(got["TTFB"][0], abs=0.2)
    targets = {m: items[0]["target"] for m, items in vitals["targets"].items()}
    assert targets == {"LCP": "#hero", "INP": "#buy", "CLS": "#content"}  # web-vitals' selectors
    assert not errors, errors

    dash = await context.new_page()  # the dashboard, the token in the URL's fragment
    await dash.goto(f"{served.base}/perf/#token={TOKEN}")
    row = dash.locator("#vitals tbody tr").first
    await row.locator("td.rating-poor").first.wait_for(timeout=10000)
    assert "/shop/{item}" in await row.inner_text()
    assert await row.locator("td.rating-poor").count() == 2  # INP and CLS
    assert await row.locator("td.rating-needs-improvement").count() == 1  # LCP
    await context.close()
