"""Each process writes its measurements to the shared store: the multi-process half of monitoring.

Every `interval` seconds the publisher takes this process's collector snapshot and writes (1) the
cumulative snapshot, which `/metrics` sums over processes, and (2) the delta since the last write, added
into this process's row for the current minute, which the report, the history and the alerts read.
Each process writes only its own rows, so there is no write contention and no lost update.

Dead processes are compacted: every `COMPACT_EVERY` seconds a publisher asks the store to fold the
snapshots of processes silent for `dead_after` seconds into one retired aggregate, so a scrape reads the
live processes plus one row however many workers came and went. A process wrongly taken for dead (paused
longer than that) finds out at its next publish (the store refuses its old name): it takes a new name and
from then on publishes only what it measured after the snapshot that was folded, so nothing counts twice.
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
from perfkit.monitor.snapshots import Snapshot, add, diff, empty, since
from perfkit.monitor.store.base import MonitorStore

log = logging.getLogger("perfkit.monitor")
PRUNE_EVERY = 600.0
COMPACT_EVERY = 60.0


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
        dead_after: float | None = None,
    ) -> None:
        self.collector, self.store = collector, store
        self.interval, self.retention, self.disk_path = interval, retention, disk_path
        self.proc = process_id()
        self.published: Snapshot | None = None  # the cumulative snapshot last written
        self.minute = -1
        self.rollup: Snapshot = empty()
        self.system: dict[str, float] = {}
        self.baseline: Snapshot | None = None  # what was folded into the retired aggregate under an old name
        self.dead_after = max(120.0, 10 * interval) if dead_after is None else dead_after
        self._pruned = 0.0
        self._compacted = 0.0

    def current(self) -> Snapshot:
        """This process's snapshot as a reader must count it: without what was folded into the retired
        aggregate when it was taken for dead (the whole snapshot, if it never was)."""
        return since(self.collector.snapshot(), self.baseline)

    def unpublished(self) -> Snapshot:
        """What this process measured since its last write (everything, if it never wrote)."""
        return diff(self.collector.snapshot(), self.published)

    async def publish(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        if self.proc.split(":")[1] != str(os.getpid()):  # forked after creation: become a new process
            self.proc, self.published, self.minute, self.baseline = process_id(), None, -1, None
        snapshot = self.collector.snapshot()
        delta = diff(snapshot, self.published)
        sample: dict[str, float] = {}
        with contextlib.suppress(Exception):  # psutil missing or failing must not stop publishing
            sample = await asyncio.to_thread(system.sample, self.disk_path)
        for attempt in range(2):
            minute = int(now // 60)
            if minute != self.minute:
                self.minute, self.rollup, self.system = minute, empty(), {}
            rollup = add([self.rollup, delta])
            for key, value in sample.items():
                self.system[key] = max(value, self.system.get(key, 0.0))
            published = {**since(snapshot, self.baseline), "system": sample}
            if await self.store.publish(
                self.proc, now, published, minute, {**rollup, "system": dict(self.system)}
            ):
                self.rollup = rollup
                break
            if attempt:  # refused twice: a store that retires new names at once; try again next time
                return
            # folded as dead while alive: what the store holds of us is `self.published`; go on as new
            self.proc, self.baseline, self.minute = process_id(), self.published, -1
        self.published = snapshot
        if now - self._compacted > COMPACT_EVERY:
            self._compacted = now
            await self.store.compact(now - self.dead_after)
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
