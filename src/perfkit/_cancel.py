"""Keep task cancellation intact when a driver reports it as an I/O error.

On Python 3.11 a cancellation that lands as an `asyncio.timeout()` expires comes out as TimeoutError
(CPython gh-102780; redis-py reads under such a timeout). Translated into a perfkit error and caught by a
loop's `except Exception`, it would swallow the cancel: the task keeps running with `cancelling() > 0`.
"""

from __future__ import annotations

import asyncio


def cancelling() -> bool:
    """True when the current task has a cancellation pending."""
    try:
        task = asyncio.current_task()
    except RuntimeError:
        return False
    return task is not None and task.cancelling() > 0
