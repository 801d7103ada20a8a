"""Optional StatsD push: every interval, counter deltas (`|c`), histogram counts and mean times, gauges.

`MonitorConfig(statsd="127.0.0.1:8125")` (or `PERFKIT_MONITOR_STATSD`). Plain UDP datagrams, batched
up to ~1400 bytes; a metric with labels becomes `prefix.name.label1.label2`.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
from typing import Any

from perfkit.metrics import Collector
from perfkit.monitor.snapshots import Snapshot, diff

_UNSAFE = re.compile(r"[^A-Za-z0-9_\-]+")


def _name(prefix: str, name: str, labels: list[str]) -> str:
    parts = [prefix, name, *(_UNSAFE.sub("_", v).strip("_") or "_" for v in labels)]
    return ".".join(p for p in parts if p)


def lines(current: Snapshot, previous: Snapshot | None, prefix: str) -> list[str]:
    out = []
    delta = diff(current, previous)
    for name, entry in delta["metrics"].items():
        for labels, value in entry["series"]:
            key = _name(prefix, name, labels)
            if entry["kind"] == "histogram":
                count = sum(value[:-1])
                out.append(f"{key}.count:{count:g}|c")
                if count:
                    out.append(f"{key}.mean:{value[-1] / count * 1000:.3f}|ms")
            else:
                out.append(f"{key}:{value:g}|c")
    for name, entry in current["metrics"].items():
        if entry["kind"] == "gauge":
            out.extend(f"{_name(prefix, name, labels)}:{value:g}|g" for labels, value in entry["series"])
    return out


def packets(items: list[str], size: int = 1400) -> list[bytes]:
    out, current = [], ""
    for line in items:
        if current and len(current) + len(line) + 1 > size:
            out.append(current.encode())
            current = ""
        current = f"{current}\n{line}" if current else line
    if current:
        out.append(current.encode())
    return out


class StatsdPusher:
    def __init__(self, collector: Collector, address: str, prefix: str = "perfkit") -> None:
        host, _, port = address.rpartition(":")
        self.collector, self.prefix = collector, prefix
        self.address = (host or "127.0.0.1", int(port or 8125))
        self.previous: Snapshot | None = None

    def push(self, sock: Any) -> int:
        current = self.collector.snapshot()
        sent = 0
        for packet in packets(lines(current, self.previous, self.prefix)):
            sock.sendto(packet, self.address)
            sent += 1
        self.previous = current
        return sent

    async def run(self, interval: float) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        try:
            while True:
                await asyncio.sleep(interval)
                with contextlib.suppress(OSError):  # nobody listening, buffer full: fire-and-forget
                    self.push(sock)
        finally:
            sock.close()
