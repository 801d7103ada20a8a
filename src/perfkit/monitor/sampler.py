"""Recent history in memory: cumulative merged snapshots taken at intervals, for sliding-window deltas.

The live stream and the alert evaluator both need "what happened in the last N seconds" at a resolution
finer than the per-minute rollups; `Sampler.delta(n)` is the newest sample minus the one N seconds older.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Awaitable, Callable

from perfkit.monitor.snapshots import Snapshot, diff, without_gauges


class Sampler:
    def __init__(self, source: Callable[[], Awaitable[tuple[Snapshot, int]]], keep: float) -> None:
        self.source, self.keep = source, keep
        self.samples: deque[tuple[float, Snapshot]] = deque()
        self.latest: Snapshot | None = None  # with gauges
        self.processes = 1

    async def sample(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        snapshot, self.processes = await self.source()
        self.latest = snapshot
        self.samples.append((now, without_gauges({**snapshot, "findings": {}})))
        while self.samples and self.samples[0][0] < now - self.keep - 1:
            self.samples.popleft()

    def delta(self, seconds: float) -> tuple[Snapshot, float]:
        """(newest minus the sample closest to `seconds` ago, the seconds between them)."""
        if len(self.samples) < 2:  # one sample is a level, not a change: nothing happened "in" it yet
            return {"started": 0.0, "metrics": {}, "findings": {}}, 0.0
        t1, newest = self.samples[-1]
        base_t, base = self.samples[0]
        for t, snap in self.samples:
            if t <= t1 - seconds:
                base_t, base = t, snap
            else:
                break
        return diff(newest, base), t1 - base_t
