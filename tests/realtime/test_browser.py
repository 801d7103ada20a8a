"""The JavaScript client (src/perfkit/realtime/static/perfkit-realtime.js) in headless Chromium against
real uvicorn processes (tests/realtime/_page_app.py): delivery in order, publish, resume after a
server restart, resync, the SSE fallback, and no reconnect loop after a refusal."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from perfkit.realtime import Hub
from tests.conftest import eventually

from .conftest import Server

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
APP = "tests.realtime._page_app:app"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(
        not os.access(CHROMIUM, os.X_OK),
        reason=f"BROWSER TESTS SKIPPED: {CHROMIUM} is missing; `apt-get install -y chromium` (.ci/run does it)",
    ),
]


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """Headless Chromium (Debian's); closed after the test."""
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        chromium = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield chromium
        finally:
            await chromium.close()


class Page:
    """One browser page running the client; `errors` collects console errors and uncaught exceptions."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.errors: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    async def open(self, server: Server, query: str) -> None:
        await self.page.goto(f"{server.http}/page?{query}")
        await self.page.wait_for_function("document.title === 'ready'", timeout=10_000)

    async def js(self, expression: str, arg: Any = None) -> Any:
        return await self.page.evaluate(expression, arg)

    async def until(self, expression: str, arg: Any = None, timeout: float = 10_000) -> Any:
        """Wait until `expression` (a function body's value) is truthy in the page; returns it."""
        handle = await self.page.wait_for_function(expression, arg=arg, timeout=timeout)
        return await handle.json_value()

    async def data(self, channel: str) -> list[Any]:
        return list(
            await self.js(
                "(c) => events.filter(([n, v]) => n === 'message' && v.channel === c).map(([, v]) => v.data)",
                channel,
            )
        )

    async def received(self, channel: str, count: int, timeout: float = 10_000) -> list[Any]:
        """The data of `channel`'s messages once at least `count` arrived."""
        await self.until(
            "([c, n]) => events.filter(([e, v]) => e === 'message' && v.channel === c).length >= n",
            [channel, count],
            timeout,
        )
        return await self.data(channel)

    async def kinds(self, name: str) -> list[Any]:
        return list(await self.js("(n) => events.filter(([e]) => e === n).map(([, v]) => v)", name))


@pytest.fixture
async def pages(browser: Any) -> AsyncIterator[Callable[[], Any]]:
    """New pages in the browser (`await pages()`), closed after the test."""
    made: list[Any] = []

    async def new() -> Page:
        page = await browser.new_page()
        made.append(page)
        return Page(page)

    yield new
    for page in made:
        await page.close()


async def test_messages_arrive_in_order_and_requests_are_answered(
    servers: Callable[..., Server], pages: Callable[[], Any]
) -> None:
    """The page subscribes at connect and later, gets 300 messages in order (a burst unpacked from
    `batch` frames), publishes where allowed and is refused elsewhere, and measures its round trip."""
    server = servers("memory://", app=APP, heartbeat=0.5, batch_window=0.05)
    page: Page = await pages()
    await page.open(server, "channel=room:1")
    assert await page.until("rt.state === 'open' && rt.transport") == "ws"
    await page.until("events.some(([e, v]) => e === 'subscribed' && v.channel === 'room:1')")
    await server.publish("room:1", *range(300))
    assert await page.received("room:1", 300) == list(range(300))
    assert await page.js("rt.frames") < 300  # batches were unpacked: fewer frames than messages
    frame = await page.js("rt.subscribe('chat:1')")
    assert frame["type"] == "subscribed" and frame["channel"] == "chat:1"
    published = await page.js("rt.publish('chat:1', {text: 'hi'})")
    assert published["type"] == "published" and published["offset"] == 1
    assert await page.received("chat:1", 1) == [{"text": "hi"}]
    refused = await page.js("rt.publish('room:1', 1).then(() => 'accepted', (e) => e.code)")
    assert refused == "forbidden"
    denied = await page.js("rt.subscribe('secret:1').then(() => 'subscribed', (e) => e.code)")
    assert denied == "forbidden" and not await page.js("rt.wanted.has('secret:1')")
    await page.js("rt.unsubscribe('room:1')")
    await server.publish("room:1", "after")
    await server.publish("chat:1", "marker")
    assert await page.received("chat:1", 2) == [{"text": "hi"}, "marker"]
    assert await page.data("room:1") == list(range(300))  # nothing after the unsubscribe
    rtt = await page.until("rt.rtt !== null && rt.rtt")
    assert 0 < rtt < 1000
    assert await eventually(lambda: _pong_seen(server), timeout=5, what="the server measured a round trip")
    assert page.errors == [], page.errors


async def _pong_seen(server: Server) -> bool:
    return any(r is not None for r in (await server.stats())["rtt"])
