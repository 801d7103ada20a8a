"""Prometheus metrics across gunicorn workers: a real gunicorn with 2 sync workers serves a tiny Django
project; requests land on both, and /perf/metrics answered by either counts them all."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from perfkit.monitor.store import registry
from tests.conftest import REDIS_URL, free_port, require_redis
from tests.django.web_servers import TOKEN, metric, serve

pytestmark = pytest.mark.slow


@pytest.fixture(params=[pytest.param("sqlite", marks=pytest.mark.sqlite),
                        pytest.param("redis", marks=pytest.mark.redis)])  # fmt: skip
def store_url(request: Any, tmp_path: Path) -> Iterator[str]:
    """The shared monitor store: a SQLite file of this test, or Redis under a prefix of its own
    (dropped afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/monitor.db"
        return
    require_redis()
    url = f"{REDIS_URL}?prefix=pktest-djgunicorn-{uuid.uuid4().hex[:10]}:"
    try:
        yield url
    finally:

        async def drop() -> None:
            store = registry.create(url)
            await store.drop()  # type: ignore[attr-defined]
            await store.close()

        asyncio.run(drop())


def test_metrics_sum_every_gunicorn_worker(store_url: str) -> None:
    """N requests spread over 2 workers: /perf/metrics (with the token) counts N under the URL pattern,
    and says it summed 2 processes."""
    pytest.importorskip("gunicorn")
    port = free_port()
    args = ["gunicorn", "--workers", "2", "--bind", f"127.0.0.1:{port}", "--log-level", "warning",
            "tests.django.server_app:wsgi"]  # fmt: skip
    with serve(args, port, {"PERFKIT_MONITOR_URL": store_url}) as base:
        pids: set[str] = set()
        sent = 0
        while len(pids) < 2 and sent < 400:  # a new connection per request: the workers race to accept
            response = httpx.get(f"{base}/pid/", headers={"Connection": "close"}, timeout=5)
            assert response.status_code == 200 and "Server-Timing" in response.headers
            pids.add(response.text)
            sent += 1
        assert len(pids) == 2, f"all {sent} requests went to one worker"
        labels = {"method": "GET", "route": "/pid/", "status": "2xx"}
        deadline = time.monotonic() + 20
        seen: list[Any] = []
        while time.monotonic() < deadline:  # each worker publishes every 0.2 s
            text = httpx.get(f"{base}/perf/metrics", headers=TOKEN, timeout=5).text
            seen = [metric(text, "perfkit_http_request_duration_seconds_count", labels),
                    metric(text, "perfkit_monitor_processes", {})]  # fmt: skip
            if seen[0] == sent and seen[1] is not None and seen[1] >= 2:
                break
            time.sleep(0.1)
        assert seen[0] == sent and seen[1] is not None and seen[1] >= 2, (seen, sent)
        assert httpx.get(f"{base}/perf/metrics", timeout=5).status_code == 401
