"""Fire-and-forget publishing in call order (job events, after-commit hooks): one queue and one task on
the hub's loop, so a hook never waits for Redis and two events of one job never swap places."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from perfkit.redaction import redact

logger = logging.getLogger("perfkit.realtime")


class Outbox:
    def __init__(self, publish: Callable[[str, Any], Awaitable[Any]]) -> None:
        self.publish = publish
        self.queue: asyncio.Queue[tuple[str, Any]] | None = None
        self.task: asyncio.Task[None] | None = None

    def put(self, loop: asyncio.AbstractEventLoop, channel: str, data: Any) -> None:
        """Queue one message (from code running on `loop`)."""
        if self.queue is None:
            self.queue = asyncio.Queue()
        if self.task is None or self.task.done():
            self.task = loop.create_task(self._run(self.queue), name="perfkit-realtime-outbox")
        self.queue.put_nowait((channel, data))

    async def _run(self, queue: asyncio.Queue[tuple[str, Any]]) -> None:
        while True:
            channel, data = await queue.get()
            try:
                await self.publish(channel, data)
            except Exception as exc:  # a hook's publish must never break its caller: logged
                logger.warning("realtime: publish on %s failed: %s", channel, redact(str(exc)))
            finally:
                queue.task_done()

    async def drain(self) -> None:
        """Wait until every message queued so far is published (or failed)."""
        if self.queue is not None:
            await self.queue.join()

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(BaseException):
                await self.task
        self.task = self.queue = None
