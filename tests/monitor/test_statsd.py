"""Optional StatsD push: counter deltas, histogram counts and means, gauges, as UDP datagrams."""

from __future__ import annotations

import asyncio
from typing import Any

from perfkit.monitor.statsd import lines, packets

from .conftest import EnvFactory


class Datagrams(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.changed = asyncio.Event()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.lines.extend(data.decode().split("\n"))
        self.changed.set()


async def test_statsd_push_over_udp(make_env: EnvFactory) -> None:
    """With statsd= set, the running monitor sends request counts and timings to a UDP listener."""
    loop = asyncio.get_running_loop()
    transport, listener = await loop.create_datagram_endpoint(Datagrams, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    try:
        env = await make_env(statsd=f"127.0.0.1:{port}", statsd_interval=0.05, publish_interval=3600)
        for _ in range(3):
            await env.client.get("/big")
        await env.monitor.start()
        count = "perfkit.http_request_duration_seconds.GET.big.2xx.count:3|c"
        async with asyncio.timeout(10):
            while count not in listener.lines:
                listener.changed.clear()
                await listener.changed.wait()
        assert any(
            line.startswith("perfkit.http_request_duration_seconds.GET.big.2xx.mean:")
            for line in listener.lines
        )
        assert any(line.endswith("|g") for line in listener.lines)
    finally:
        transport.close()


def test_deltas_and_packet_size() -> None:
    """A second push sends only what changed; packets stay under the UDP-safe size."""
    snap1 = {"metrics": {"jobs_events_total": {"kind": "counter", "labels": ["queue", "event"], "help": "",
                                               "series": [[["email", "failed"], 2.0]]}}}  # fmt: skip
    snap2 = {"metrics": {"jobs_events_total": {**snap1["metrics"]["jobs_events_total"],
                                               "series": [[["email", "failed"], 5.0]]}}}  # fmt: skip
    assert lines(snap1, None, "app") == ["app.jobs_events_total.email.failed:2|c"]
    assert lines(snap2, snap1, "app") == ["app.jobs_events_total.email.failed:3|c"]
    assert lines(snap2, snap2, "app") == []
    many = [f"app.metric{i}:1|c" for i in range(500)]
    chunks = packets(many)
    assert all(len(c) <= 1400 for c in chunks)
    assert sum(len(c.split(b"\n")) for c in chunks) == 500
