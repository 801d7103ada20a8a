"""Alerts: rule parsing, pending/firing/resolved with de-duplication, and a real webhook receiver."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from perfkit.errors import ConfigurationError
from perfkit.monitor import AlertRule, Monitor, MonitorConfig

from ..conftest import eventually
from .conftest import EnvFactory


class Receiver:
    """A tiny HTTP server on 127.0.0.1 that records JSON POSTs."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.changed = asyncio.Event()
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length"))  # fmt: skip
        self.received.append(json.loads(await reader.readexactly(length)))
        self.changed.set()
        writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    async def wait_for(self, status: str, within: float = 10) -> dict[str, Any]:
        async with asyncio.timeout(within):
            while True:
                for note in self.received:
                    if note["status"] == status:
                        return note
                self.changed.clear()
                await self.changed.wait()

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/hooks/perfkit"


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    r.server = await asyncio.start_server(r.handle, "127.0.0.1", 0)
    try:
        yield r
    finally:
        r.server.close()
        await r.server.wait_closed()


def test_rule_parsing() -> None:
    """Rules read like the issue writes them; units become ms and ratios; nonsense is refused."""
    rule = AlertRule.parse("p95 > 500ms for 5m")
    assert (rule.kpi, rule.op, rule.threshold, rule.for_s) == ("p95", ">", 500.0, 300.0)
    assert AlertRule.parse("error_rate > 1%").threshold == 0.01
    assert AlertRule.parse("p99 >= 1.5s over 30s").threshold == 1500.0
    assert AlertRule.parse("p99 >= 1.5s over 30s").window_s == 30.0
    assert AlertRule.parse("cpu > 70% for 2m").threshold == 70.0
    with pytest.raises(ConfigurationError, match="not a rule"):
        AlertRule.parse("latency is bad")


async def test_pending_firing_resolved_once_each(tmp_path: Any) -> None:
    """A rule with `for` goes pending, fires once after the duration, then resolves once."""
    monitor = Monitor(MonitorConfig(url="memory://", alerts=["p95 > 100ms for 2m"], token="t"))
    latency = monitor.collector.histogram("http_request_duration_seconds", ("method", "route", "status"))
    t0 = 1_000_000.0
    sent = [await monitor.alerts.evaluate(now=t0)]
    for step in range(1, 7):
        latency.observe(("GET", "/slow", "2xx"), 0.6)
        sent.append(await monitor.alerts.evaluate(now=t0 + 30 * step))
    assert [len(s) for s in sent] == [0, 0, 0, 0, 0, 1, 0]  # pending from t0+30, fires at t0+150
    firing = sent[5][0]
    assert firing["status"] == "firing" and firing["since"] == t0 + 30
    assert firing["value"] > 100
    resolved = await monitor.alerts.evaluate(now=t0 + 240)  # nothing new in the last minute
    assert [n["status"] for n in resolved] == ["resolved"]
    assert await monitor.alerts.evaluate(now=t0 + 270) == []
    await monitor.close()


async def test_webhook_receives_firing_and_resolved(make_env: EnvFactory, receiver: Receiver) -> None:
    """Errors over 10 % fire one webhook POST; once they age out of the window, one resolve follows."""
    env = await make_env(
        alerts=["error_rate > 10% over 1s"], webhooks=[receiver.url], alert_interval=0.1, publish_interval=0.2
    )
    await env.monitor.start()

    async def sampled() -> bool:  # the first sample is the baseline the errors are measured against
        return len(env.monitor.alerts.sampler.samples) >= 1

    await eventually(sampled, what="the first alert evaluation")
    for _ in range(5):
        assert (await env.client.get("/boom")).status_code == 500
    firing = await receiver.wait_for("firing")
    assert firing["rule"] == "error_rate > 10% over 1s"
    assert firing["value"] > 0.1
    assert firing["fingerprint"] == "perfkit:error_rate > 10% over 1s"
    resolved = await receiver.wait_for("resolved")
    assert resolved["at"] > firing["at"]
    assert [n["status"] for n in receiver.received] == ["firing", "resolved"]  # de-duplicated
    alerts = await env.client.get(
        "/perf/api/alerts", headers={"authorization": "Bearer s3cret-token-for-tests"}
    )
    assert [n["status"] for n in alerts.json()["recent"]] == ["firing", "resolved"]
    assert alerts.json()["active"] == []
