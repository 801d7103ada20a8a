"""Cancellation helpers shared by the parts that talk to drivers (the Redis client, the job worker
and lease keeper, the Redis job backend).

`cancelling()`: True when the current task has a cancellation pending. Check it where an I/O error is
caught, and let the cancellation through instead of handling the error. On Python 3.11 a cancellation
that lands as an `asyncio.timeout()` expires comes out as TimeoutError (CPython gh-102780; redis-py
reads under such a timeout). Translated into a perfkit error and caught by a loop's `except Exception`,
it would swallow the cancel: the task keeps running with `cancelling() > 0`.
"""

from __future__ import annotations

import asyncio

__all__ = ["cancelling"]


def cancelling() -> bool:
    """True when the current task has a cancellation pending."""
    try:
        task = asyncio.current_task()
    except RuntimeError:
        return False
    return task is not None and task.cancelling() > 0
