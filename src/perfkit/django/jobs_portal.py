"""`PortalQueue`: the project's queue for one `JobsConfig`, driven from any thread or event loop.

Django runs async views on a new event loop per request under WSGI (and per test under its test
client), while a queue's connections belong to the loop that opened them. So every enqueue of the
project runs on one background loop, the queue's own sync facade (`queue.sync()`), over a sibling of the
queue that only ever runs there: sync callers wait for it, async callers await it and their loop stays
free.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from perfkit.jobs import JobQueue, JobsConfig
from perfkit.jobs.hooks import Hooks
from perfkit.jobs.registry import TaskRegistry

__all__ = ["PortalQueue"]

T = TypeVar("T")


class PortalQueue:
    """`queue` (what `get_queue()` returns) and `portal_queue`, its twin on the background loop."""

    def __init__(self, config: JobsConfig, registry: TaskRegistry, hooks: Hooks) -> None:
        self.config = config
        self.queue = JobQueue(config=config)
        self.queue.registry, self.queue.hooks = registry, hooks
        self.portal_queue = self.queue.sibling()

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` (over `portal_queue`) on the background loop and wait: for sync callers."""
        return self.queue.sync().call(coro)

    async def acall(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on the background loop and await it from the caller's loop, which stays free."""
        loop = self.queue.sync().portal.loop
        if asyncio.get_running_loop() is loop:
            return await coro
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))

    def close(self) -> None:
        """Close `portal_queue`'s connections, then stop the background loop."""
        facade = self.queue.sync()
        if facade.portal.started:
            facade.call(self.portal_queue.close())
        facade.close()
