"""`GET /perf/api/top`: what `perfkit top` draws, in one token-protected JSON answer.

The cumulative counters and histograms of every process (the merged snapshot without findings: the
client takes the difference of two answers for rates and percentiles over its own refresh interval),
one row per process with its CPU and memory, the ready jobs per queue, and the time of the answer.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from perfkit.monitor.monitor import Monitor


async def top(monitor: Monitor) -> dict[str, Any]:
    snapshot, live = await monitor.merged()
    queues: dict[str, int] | None = None
    if monitor.jobs is not None:
        with contextlib.suppress(Exception):  # the queue's backend down: top shows no depths
            queues = {}
            for (queue, _priority), count in (await monitor.jobs.depth()).items():
                queues[queue] = queues.get(queue, 0) + count
    return {
        "t": time.time(),
        "live_processes": live,
        "processes": await monitor.processes(),
        "queues": queues,
        "snapshot": {"started": snapshot.get("started"), "metrics": snapshot["metrics"]},
    }
