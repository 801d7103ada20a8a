"""Alert rules on any KPI, evaluated in the background; webhook (JSON POST) and log sinks.

    AlertRule.parse("p95 > 500ms for 5m")        # p50 p95 p99 avg, in ms (or s)
    AlertRule.parse("error_rate > 1%")           # error_rate cache_hit_ratio job_failure_rate db_p95
    AlertRule.parse("cpu > 70% for 2m over 30s") # cpu memory disk throughput score; `over` = window

A rule fires once when its condition has held for `for` (pending until then) and sends one "resolved"
notification when it stops holding: notifications happen only on transitions (de-duplicated). With
several workers, one process at a time evaluates (a lease in the monitor store) and the state is kept in
the store, so a new evaluator neither repeats a firing nor loses a resolution.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from perfkit.config import parse_duration
from perfkit.errors import ConfigurationError
from perfkit.monitor.report import build
from perfkit.monitor.sampler import Sampler
from perfkit.redaction import redact

if TYPE_CHECKING:
    from perfkit.monitor.monitor import Monitor

log = logging.getLogger("perfkit.alerts")
_RULE = re.compile(
    r"^\s*(\w+)\s*(>=|<=|>|<)\s*([\d.]+)\s*(ms|s|%)?\s*(?:for\s+(\S+))?\s*(?:over\s+(\S+))?\s*$", re.I
)
_MS = {"p50", "p95", "p99", "avg", "db_p95", "lcp", "inp", "fcp", "ttfb"}  # the vitals: real users' p75
_RATIO = {"error_rate", "cache_hit_ratio", "job_failure_rate"}
_PLAIN = {"cpu", "memory", "disk", "throughput", "score", "cls"}
STATE_KEY = "alerts"


@dataclass(frozen=True)
class AlertRule:
    kpi: str
    op: str
    threshold: float
    for_s: float = 0.0
    window_s: float = 60.0
    name: str = ""

    @classmethod
    def parse(cls, text: str) -> AlertRule:
        match = _RULE.match(text)
        kpis = sorted(_MS | _RATIO | _PLAIN)
        if not match or match.group(1).lower() not in _MS | _RATIO | _PLAIN:
            raise ConfigurationError(
                "alerts", f"{text!r} is not a rule like 'p95 > 500ms for 5m'; KPIs: {kpis}"
            )
        kpi, op, number, unit = match.group(1).lower(), match.group(2), float(match.group(3)), match.group(4)
        if kpi in _MS and unit and unit.lower() == "s":
            number *= 1000
        elif kpi in _RATIO and unit == "%":
            number /= 100
        for_s = parse_duration("alerts", match.group(5)) if match.group(5) else 0.0
        window = parse_duration("alerts", match.group(6)) if match.group(6) else 60.0
        return cls(kpi, op, number, for_s, window, text.strip())

    def holds(self, value: float | None) -> bool:
        if value is None:
            return False
        return {
            ">": value > self.threshold,
            "<": value < self.threshold,
            ">=": value >= self.threshold,
            "<=": value <= self.threshold,
        }[self.op]


def kpi_values(report: dict[str, Any]) -> dict[str, float | None]:
    k = report["kpis"]
    req, system = k["requests"], k["system"]
    return {
        "p50": req["p50_ms"],
        "p95": req["p95_ms"],
        "p99": req["p99_ms"],
        "avg": req["avg_ms"],
        "error_rate": req["error_rate"],
        "throughput": req["throughput_rps"],
        "cache_hit_ratio": k["cache"]["hit_ratio"],
        "job_failure_rate": k["jobs"]["failure_rate"],
        "db_p95": k["database"]["p95_ms"],
        "score": report["score"],
        "cpu": system.get("cpu_percent"),
        "memory": system.get("memory_percent"),
        "disk": system.get("disk_percent"),
        **{name: None for name in ("lcp", "inp", "cls", "fcp", "ttfb")},
        **{name.lower(): v["p75"] for name, v in report.get("web_vitals", {}).get("overall", {}).items()},
    }


def webhook_label(url: str) -> str:
    """How logs name a webhook: its origin only. Webhook URLs carry their token in the path
    (`https://hooks.slack.com/services/T0/B0/<token>`), so the path is never shown."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}/..."


async def post_json(url: str, payload: dict[str, Any], limit: float = 5.0) -> int:
    """POST `payload` as JSON (HTTP/1.1, no dependency); returns the status code."""
    parts = urlsplit(url)
    tls = parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    body = json.dumps(payload).encode()
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host = parts.netloc.rpartition("@")[2]  # userinfo never goes into the Host header
    async with asyncio.timeout(limit):
        reader, writer = await asyncio.open_connection(parts.hostname, port, ssl=tls or None)
        try:
            writer.write(
                f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nUser-Agent: perfkit-alerts\r\n"
                "Connection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
            status_line = await reader.readline()
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
    return int(status_line.split()[1])


class AlertManager:
    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor
        config = monitor.config
        self.rules = [r if isinstance(r, AlertRule) else AlertRule.parse(r) for r in config.alerts]
        self.webhooks = list(config.webhooks)
        keep = max([r.window_s for r in self.rules] or [60.0])
        self.sampler = Sampler(monitor.merged, keep)
        self.state: dict[str, dict[str, Any]] = {}
        self.sent: list[dict[str, Any]] = []  # notifications sent by this process (newest last, bounded)

    async def evaluate(self, now: float | None = None) -> list[dict[str, Any]]:
        """Sample, check every rule, notify transitions; returns the notifications sent."""
        now = time.time() if now is None else now
        await self.sampler.sample(now)
        system = await self.monitor.system()
        notes = []
        for rule in self.rules:
            window, seconds = self.sampler.delta(rule.window_s)
            report = build(
                window,
                max(seconds, 1.0),
                {},
                system,
                self.monitor.config.budgets,
                window_s=rule.window_s,
                processes=self.sampler.processes,
            )
            value = kpi_values(report)[rule.kpi]
            state = self.state.setdefault(rule.name, {"status": "ok", "since": None})
            if rule.holds(value):
                if state["status"] == "ok":
                    state.update(status="pending", since=now)
                if state["status"] == "pending" and now - state["since"] >= rule.for_s:
                    state["status"] = "firing"
                    notes.append(self._note(rule, "firing", value, state, now))
            elif state["status"] == "firing":
                notes.append(self._note(rule, "resolved", value, state, now))
                state.update(status="ok", since=None)
            elif state["status"] == "pending":
                state.update(status="ok", since=None)
            state["value"] = value
        for note in notes:
            await self._send(note)
        return notes

    def _note(
        self, rule: AlertRule, status: str, value: float | None, state: dict[str, Any], now: float
    ) -> dict[str, Any]:
        return {
            "status": status,
            "rule": rule.name,
            "kpi": rule.kpi,
            "value": value,
            "threshold": rule.threshold,
            "since": state["since"],
            "at": now,
            "fingerprint": f"perfkit:{rule.name}",
            "definition": asdict(rule),
        }

    async def _send(self, note: dict[str, Any]) -> None:
        log.warning(
            "alert %s: %s (value %s)", note["status"], note["rule"], note["value"], extra={"perfkit": note}
        )
        self.sent = [*self.sent[-99:], note]
        for url in self.webhooks:
            try:
                status = await post_json(url, note)
                if status >= 300:
                    log.warning("alert webhook %s answered %s", webhook_label(url), status)
            except Exception as exc:  # a sink being down must not stop evaluation
                log.warning("alert webhook %s failed: %s", webhook_label(url), redact(str(exc)))

    async def run(self) -> None:
        interval = self.monitor.config.alert_interval
        store = self.monitor.store
        owner = self.monitor.publisher.proc
        leading = False
        while True:
            try:
                if await store.lead("alerts", owner, interval * 3):
                    if not leading:  # just took over: continue from the shared state
                        self.state = (await store.get(STATE_KEY)) or {}
                        leading = True
                    if await self.evaluate() or self.state:
                        await store.put(STATE_KEY, self.state)
                else:
                    leading = False
            except Exception as exc:
                log.warning("alert evaluation failed: %s", exc)
            await asyncio.sleep(interval)

    def active(self) -> list[dict[str, Any]]:
        return [{"rule": name, **s} for name, s in self.state.items() if s["status"] != "ok"]

    async def close(self) -> None:
        return None
