"""The tiny Django project under a real uvicorn (ASGI): async views through PerfkitMiddleware, the
monitor endpoints, and a Channels websocket consumer beside them, untouched."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.django.server_urls import BIG
from tests.django.web_servers import TOKEN, metric, serve

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """uvicorn serving `tests.django.server_app:asgi` on 127.0.0.1 (stopped by pid afterwards)."""
    port = free_port()
    store = Path(tmp_path_factory.mktemp("asgi")) / "monitor.db"
    args = ["uvicorn", "tests.django.server_app:asgi", "--host", "127.0.0.1", "--port", str(port),
            "--lifespan", "off", "--log-level", "warning"]  # fmt: skip
    with serve(args, port, {"PERFKIT_MONITOR_URL": f"sqlite:///{store}"}) as url:
        yield url


def test_async_views_under_uvicorn(base: str) -> None:
    """An async view gets Server-Timing, a request id, and compression, served by uvicorn."""
    response = httpx.get(f"{base}/apid/", headers={"X-Request-ID": "from-client-1"})
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "from-client-1"
    assert response.headers["server-timing"].startswith("total;dur=")
    packed = httpx.get(f"{base}/abig/", headers={"Accept-Encoding": "gzip"})
    assert packed.headers["content-encoding"] == "gzip" and packed.content == BIG  # httpx decodes it
    with httpx.stream("GET", f"{base}/abig/", headers={"Accept-Encoding": "gzip"}) as response:
        raw = b"".join(response.iter_raw())
    assert len(raw) < len(BIG) and gzip.decompress(raw) == BIG


def test_monitor_endpoints_under_uvicorn(base: str) -> None:
    """The monitor answers under ASGI with its token rules, and counts the async views' requests."""
    for _ in range(3):
        httpx.get(f"{base}/apid/")
    assert httpx.get(f"{base}/perf/metrics").status_code == 401
    text = httpx.get(f"{base}/perf/metrics", headers=TOKEN).text
    count = metric(text, "perfkit_http_request_duration_seconds_count", {"route": "/apid/", "status": "2xx"})
    assert count is not None and count >= 3
    ready = httpx.get(f"{base}/perf/health/ready", headers=TOKEN).json()
    assert ready["checks"]["database:default"]["status"] == "pass"
    with httpx.stream("GET", f"{base}/perf/live?max=2", headers=TOKEN, timeout=10) as live:
        assert live.headers["content-type"] == "text/event-stream"
        frames = [line for line in live.iter_lines() if line.startswith("data: ")]
    assert len(frames) == 2


def test_a_channels_websocket_passes_untouched(base: str) -> None:
    """A websocket consumer under Channels' ProtocolTypeRouter works beside the instrumented HTTP app."""
    pytest.importorskip("channels")
    websockets = pytest.importorskip("websockets")

    async def talk() -> str:
        async with websockets.connect(base.replace("http", "ws") + "/ws/echo/") as ws:
            await ws.send("hi")
            return str(await asyncio.wait_for(ws.recv(), 5))

    assert asyncio.run(talk()) == "echo hi"
    assert httpx.get(f"{base}/apid/").headers["server-timing"]
