"""The app the reliability tests run in real worker processes (`perfkit worker jobs.worker_app:jobs`).

URL and lease come from PERFKIT_JOBS_URL / PERFKIT_JOBS_LEASE; every execution appends its number to
PKTEST_LOG, so the test can count lost and duplicated runs.
"""

from __future__ import annotations

import asyncio
import os

from perfkit.jobs import Context, JobQueue

jobs = JobQueue()
LOG = os.environ.get("PKTEST_LOG", os.devnull)
SLEEP = float(os.environ.get("PKTEST_SLEEP", "0.01"))


@jobs.task(queue="rel", name="rel.work")
async def work(ctx: Context, n: int) -> int:
    await asyncio.sleep(SLEEP)
    with open(LOG, "a") as log:  # one tiny O_APPEND write: atomic across processes
        log.write(f"{n}\n")
    return n
