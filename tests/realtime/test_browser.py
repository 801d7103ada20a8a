"""The JavaScript client (src/perfkit/realtime/static/perfkit-realtime.js) in headless Chromium against
real uvicorn processes (tests/realtime/_page_app.py): delivery in order, publish, resume after a
server restart, resync, the SSE fallback, and no reconnect loop after a refusal."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from perfkit.realtime import Hub
from tests._browser import CHROMIUM, chromium
from tests.conftest import eventually

from .conftest import OwnRedis, ProcessServer

APP = "tests.realtime._page_app:from_environment"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(
        not os.access(CHROMIUM, os.X_OK),
        reason=f"BROWSER TESTS SKIPPED: {CHROMIUM} is missing; `apt-get install -y chromium` (.ci/run)",
    ),
]


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """Headless Chromium (Debian's); closed after the test."""
    async with chromium() as browser:
        yield browser


# what Chromium itself logs for a refused connection or a failed request (the tests cause those)
NETWORK = ("WebSocket connection to ", "Failed to load resource", "net::ERR_")


class Page:
    """One browser page running the client; `errors` collects console errors and uncaught exceptions
    (not the browser's own lines about the failed connections a test causes on purpose)."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.errors: list[str] = []
        page.on("console", self.console)
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    def console(self, message: Any) -> None:
        if message.type == "error" and not message.text.startswith(NETWORK):
            self.errors.append(message.text)

    async def open(self, server: ProcessServer, query: str) -> None:
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
    process_servers: Callable[..., ProcessServer], pages: Callable[[], Any]
) -> None:
    """The page subscribes at connect and later, gets 300 messages in order (a burst unpacked from
    `batch` frames), publishes where allowed and is refused elsewhere, and measures its round trip."""
    server = process_servers("memory://", app=APP, heartbeat=0.5, batch_window=0.05)
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


async def _pong_seen(server: ProcessServer) -> bool:
    return any(r is not None for r in (await server.stats())["rtt"])


async def restart(
    server: ProcessServer, process_servers: Callable[..., ProcessServer], url: str, **options: Any
) -> ProcessServer:
    """Stop `server` (SIGTERM: its clients get 1012) and start another on the same port."""
    server.stop()
    return process_servers(url, port=server.port, app=APP, **options)


@pytest.mark.redis
async def test_resumes_after_a_server_restart_without_loss(
    process_servers: Callable[..., ProcessServer], pages: Callable[[], Any], redis_url: str
) -> None:
    """Messages published while the only server is down reach the page once it is back, in order, with
    no duplicate and no resync (resumed from the page's last offset, Redis history); then live ones."""
    server = process_servers(redis_url, app=APP)
    page: Page = await pages()
    await page.open(server, "channel=room:r")
    await page.until("rt.state === 'open'")
    await server.publish("room:r", 1, 2, 3)
    assert await page.received("room:r", 3) == [1, 2, 3]
    server.stop()
    await page.until("rt.state !== 'open'")
    hub = Hub(redis_url)
    try:
        for value in range(4, 21):
            await hub.publish("room:r", value)  # from another process while no server runs
    finally:
        await hub.close()
    server = await restart(server, process_servers, redis_url)
    assert await page.received("room:r", 20) == list(range(1, 21))
    await server.publish("room:r", 21)
    assert await page.received("room:r", 21) == list(range(1, 22))
    assert await page.kinds("resync") == []
    assert await page.js("rt.connects") == 2
    delays = [v["delay"] for v in await page.kinds("state") if v["state"] == "waiting"]
    assert len(delays) >= 3, delays  # it kept trying while the server was down, with backoff [50, 400] ms:
    assert all(0 <= d <= min(400, 50 * 2**k) for k, d in enumerate(delays)), delays  # exponential bound
    assert len(set(delays)) == len(delays), delays  # full jitter: random within the bound
    assert page.errors == [], page.errors


@pytest.mark.redis
async def test_resync_outside_the_window(
    process_servers: Callable[..., ProcessServer], pages: Callable[[], Any], redis_url: str
) -> None:
    """More messages missed than the history keeps: `resync` (reason history) and the stream goes on
    after its offset; a memory:// server that restarts has a new epoch: `resync` (reason epoch)."""
    server = process_servers(redis_url, app=APP, history_size=5)
    page: Page = await pages()
    await page.open(server, "channel=room:h")
    await page.until("rt.state === 'open'")
    await server.publish("room:h", 0)
    await page.received("room:h", 1)
    server.stop()
    hub = Hub(redis_url, history_size=5)
    try:
        for value in range(1, 21):
            await hub.publish("room:h", value)
    finally:
        await hub.close()
    server = await restart(server, process_servers, redis_url, history_size=5)
    resync = await page.until("events.find(([e]) => e === 'resync')?.[1]")
    assert resync["channel"] == "room:h" and resync["reason"] == "history" and resync["offset"] == 21
    await server.publish("room:h", "live")
    assert (await page.received("room:h", 2))[-1] == "live"

    local = process_servers("memory://", app=APP)
    other: Page = await pages()
    await other.open(local, "channel=room:e")
    await other.until("rt.state === 'open'")
    await local.publish("room:e", "a")
    await other.received("room:e", 1)
    await restart(local, process_servers, "memory://")
    resync = await other.until("events.find(([e]) => e === 'resync')?.[1]")
    assert resync["channel"] == "room:e" and resync["reason"] == "epoch"
    assert page.errors == other.errors == [], (page.errors, other.errors)


@pytest.mark.redis
async def test_falls_back_to_sse_when_websocket_is_blocked(
    process_servers: Callable[..., ProcessServer], pages: Callable[[], Any], redis_url: str
) -> None:
    """When the server answers but its WebSocket handshake fails (here: a path with no WebSocket, as
    behind a proxy that strips upgrades), the page uses SSE: it receives, subscribes and unsubscribes
    (each a new stream, resuming the other channels), and resumes after a server restart without loss."""
    server = process_servers(redis_url, app=APP, heartbeat=0.5)
    page: Page = await pages()
    await page.open(server, "channel=room:s&ws=/no-websocket-here&sse=/events")
    assert await page.until("rt.state === 'open' && rt.transport") == "sse"
    # `open` comes with `welcome`, before the connect URL's subscriptions are made: wait for those
    await page.until("events.some(([e, v]) => e === 'subscribed' && v.channel === 'room:s')")
    await server.publish("room:s", *range(50))
    assert await page.received("room:s", 50) == list(range(50))
    frame = await page.js("rt.subscribe('room:t')")
    assert frame["channel"] == "room:t"
    await server.publish("room:s", 50)
    await server.publish("room:t", "t")
    assert await page.received("room:s", 51) == list(range(51))  # the new stream resumed room:s
    assert await page.received("room:t", 1) == ["t"]
    assert await page.js("rt.publish('chat:1', 1).then(() => 'sent', (e) => e.code)") == "unavailable"
    await page.js("rt.unsubscribe('room:t')")
    await page.until("rt.state === 'open'")
    server.stop()
    await page.until("rt.state !== 'open'")
    hub = Hub(redis_url)
    try:
        await hub.publish("room:t", "not wanted")
        for value in range(51, 60):
            await hub.publish("room:s", value)  # while no server runs
    finally:
        await hub.close()
    server = await restart(server, process_servers, redis_url, heartbeat=0.5)
    assert await page.received("room:s", 60) == list(range(60))
    assert await page.data("room:t") == ["t"]
    assert await page.js("rt.transport") == "sse"
    assert await page.kinds("resync") == []
    assert page.errors == [], page.errors


async def _refusals(server: ProcessServer, reason: str) -> float:
    async with httpx.AsyncClient(timeout=5) as client:
        found = (await client.get(f"{server.http}/metrics")).json().get("realtime_refused_total", {})
    return float(found.get(reason, 0))


NO_LOOP = 1.5  # seconds a refused client is watched: with a 50-400 ms backoff a loop would retry ~8 times


async def test_a_refusal_does_not_reconnect(
    process_servers: Callable[..., ProcessServer], pages: Callable[[], Any]
) -> None:
    """Refused auth (close 4401; HTTP 401 over SSE) and a refused Origin (handshake 403, seen by a probe)
    stop the client: state `closed` with the code, and the server sees one attempt each, not a loop."""
    server = process_servers("memory://", app=APP, origins=["https://app.example.com"])
    page: Page = await pages()
    await page.open(server, "channel=room:x&token=nobody")  # same origin is not on the allow-list:
    closed = await page.until("events.find(([e]) => e === 'closed')?.[1]")  # refused before auth runs
    assert closed["code"] == 4403
    open_ = process_servers("memory://", app=APP)
    other: Page = await pages()
    await other.open(open_, "channel=room:x&token=nobody")
    closed = await other.until("events.find(([e]) => e === 'closed')?.[1]")
    assert closed["code"] == 4401
    sse: Page = await pages()  # SSE only: HTTP 401 is final too
    await sse.open(open_, "channel=room:x&token=nobody&ws=&sse=/events")
    closed = await sse.until("events.find(([e]) => e === 'closed')?.[1]")
    assert closed["code"] == 4401
    await asyncio.sleep(NO_LOOP)  # nothing to wait for: the claim is that nothing happens
    assert await _refusals(server, "origin") == 1
    assert await _refusals(open_, "unauthorized") == 2  # the WebSocket page and the SSE page, once each
    assert await page.js("rt.state") == await other.js("rt.state") == await sse.js("rt.state") == "closed"


async def test_es_module_build(
    process_servers: Callable[..., ProcessServer], pages: Callable[[], Any]
) -> None:
    """`import PerfkitRealtime from "/realtime/perfkit-realtime.mjs"` works and receives, like the script."""
    server = process_servers("memory://", app=APP)
    page: Page = await pages()
    await page.open(server, "channel=room:m&module=1")
    await page.until("rt.state === 'open'")
    await server.publish("room:m", "m")
    assert await page.received("room:m", 1) == ["m"]
    assert page.errors == [], page.errors


async def test_a_silent_server_is_given_up_and_rejoined(
    process_servers: Callable[..., ProcessServer], pages: Callable[[], Any]
) -> None:
    """A server that stops answering (SIGSTOP: the socket stays open, nothing comes) is noticed by the
    client's heartbeat watchdog, which reconnects; once the server runs again the page resumes."""
    server = process_servers("memory://", app=APP, heartbeat=0.3)
    page: Page = await pages()
    await page.open(server, "channel=room:d&dead=1500")
    await page.until("rt.state === 'open'")
    await server.publish("room:d", 1)
    await page.received("room:d", 1)
    server.proc.send_signal(signal.SIGSTOP)
    try:
        lost = await page.until("events.find(([e]) => e === 'close')?.[1]")
        assert lost["reason"] == "heartbeat timeout" and lost["transport"] == "ws"
        assert await page.js("rt.state") != "open"
    finally:
        server.proc.send_signal(signal.SIGCONT)
    await page.until("rt.connects === 2 && rt.state === 'open'", timeout=20_000)
    await server.publish("room:d", 2)
    assert await page.received("room:d", 2) == [1, 2]
    assert page.errors == [], page.errors


REFUSED = "events.filter(([e, v]) => e === 'error' && v.code === 'unavailable').length"


async def test_an_unavailable_subscribe_is_asked_again(
    own_redis: Callable[[bool], OwnRedis],
    process_servers: Callable[..., ProcessServer],
    pages: Callable[[], Any],
) -> None:
    """The server's Redis is down when the pages connect: their subscribes are refused `unavailable`
    and asked again with backoff and jitter; with `retries=1` the channel is given up after the second
    refusal; once Redis is back the other page's channel is subscribed and its messages arrive."""
    redis_server = own_redis(False)
    server = process_servers(redis_server.url, app=APP)
    redis_server.stop()
    bounded: Page = await pages()
    await bounded.open(server, "channel=room:g&retries=1")
    await bounded.until("!rt.wanted.has('room:g')")
    assert await bounded.js(REFUSED) == 2
    page: Page = await pages()
    await page.open(server, "channel=room:v&retries=1000")
    await page.until(f"{REFUSED} >= 2")
    redis_server.start()
    await page.until("events.some(([e, v]) => e === 'subscribed' && v.channel === 'room:v')", timeout=20_000)
    await server.publish("room:v", "back")
    assert await page.received("room:v", 1) == ["back"]
    assert page.errors == [], page.errors
