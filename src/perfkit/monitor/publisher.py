"""Each process writes its measurements to the shared store: the multi-process half of monitoring.

Every `interval` seconds the publisher takes this process's collector snapshot and writes (1) the
cumulative snapshot, which `/metrics` sums over processes, and (2) the delta since the last write, added
into this process's row for the current minute, which the report, the history and the alerts read.
Each process writes only its own rows, so there is no write contention and no lost update.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time

from perfkit.metrics import Collector
from perfkit.monitor import system
from perfkit.monitor.snapshots import Snapshot, add, diff, empty
from perfkit.monitor.store.base import MonitorStore

log = logging.getLogger("perfkit.monitor")
PRUNE_EVERY = 600.0


def process_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"


class Publisher:
    def __init__(
        self,
        collector: Collector,
        store: MonitorStore,
        *,
        interval: float,
        retention: float,
        disk_path: str = "/",
    ) -> None:
        self.collector, self.store = collector, store
        self.interval, self.retention, self.disk_path = interval, retention, disk_path
        self.proc = process_id()
        self.published: Snapshot | None = None  # the cumulative snapshot last written
        self.minute = -1
        self.rollup: Snapshot = empty()
        self.system: dict[str, float] = {}
        self._pruned = 0.0

    def unpublished(self) -> Snapshot:
        """What this process measured since its last write (everything, if it never wrote)."""
        return diff(self.collector.snapshot(), self.published)

    async def publish(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        if self.proc.split(":")[1] != str(os.getpid()):  # forked after creation: become a new process
            self.proc, self.published, self.minute = process_id(), None, -1
        snapshot = self.collector.snapshot()
        delta = diff(snapshot, self.published)
        minute = int(now // 60)
        if minute != self.minute:
            self.minute, self.rollup, self.system = minute, empty(), {}
        self.rollup = add([self.rollup, delta])
        with contextlib.suppress(Exception):  # psutil missing or failing must not stop publishing
            for key, value in (await asyncio.to_thread(system.sample, self.disk_path)).items():
                self.system[key] = max(value, self.system.get(key, 0.0))
        rollup = {**self.rollup, "system": dict(self.system)}
        await self.store.publish(self.proc, now, snapshot, minute, rollup)
        self.published = snapshot
        if now - self._pruned > PRUNE_EVERY:
            self._pruned = now
            await self.store.prune(now - self.retention)

    async def run(self) -> None:
        while True:
            try:
                await self.publish()
            except Exception as exc:  # the store being down must not take the app down
                log.warning("monitor: publishing to the store failed: %s", exc)
            await asyncio.sleep(self.interval)

    async def flush(self) -> None:
        """A last write on shutdown, so the final measurements reach the store."""
        with contextlib.suppress(Exception):
            await self.publish()
