"""A write to the store that fails is not half-remembered: the next one carries its delta once."""

from __future__ import annotations

import time

import pytest

from perfkit.errors import BackendError
from perfkit.metrics import Collector
from perfkit.monitor.publisher import Publisher
from perfkit.monitor.store import registry
from tests import _redis_server
from tests.conftest import free_port


async def test_a_failed_publish_does_not_count_its_delta_twice_in_the_rollup() -> None:
    """Redis stops during a write and comes back: the minute's rollup holds each request once."""
    port = free_port()
    server = _redis_server.start(port)
    store = registry.create(f"redis://127.0.0.1:{port}/0", "monitor_url")
    collector = Collector()
    served = collector.counter("http_requests_total", ("route",), "Requests")
    pub = Publisher(collector, store, interval=1.0, retention=86400)
    minute = time.time() // 60 * 60 + 1  # three writes within one minute
    try:
        served.inc(("/a",), 2)
        await pub.publish(now=minute)
        server.terminate()
        server.wait(10)
        served.inc(("/a",), 3)
        with pytest.raises(BackendError):
            await pub.publish(now=minute + 1)
        server = _redis_server.start(port)  # an empty server: the next write rewrites the minute's row
        await pub.publish(now=minute + 2)
        rows = await store.rollups(int(minute // 60), int(minute // 60))
        assert [v for _, r in rows for _, v in r["metrics"]["http_requests_total"]["series"]] == [5]
    finally:
        await store.close()
        server.terminate()
        server.wait(10)
