"""Python tasks served by `perfkit serve --tasks tests.serve.tasks:jobs` in the tests."""

from __future__ import annotations

from typing import Any

from perfkit import JobQueue

jobs = JobQueue("sqlite:///never-opened.db")  # only its registry is used: the service queues on its own URL


@jobs.task(name="resize", queue="images", retries=1)
async def resize(ctx: Any, width: int, height: int) -> dict[str, int]:
    return {"width": width // 2, "height": height // 2, "attempt": ctx.attempt}
