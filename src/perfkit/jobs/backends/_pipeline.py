"""Autopipelining of enqueues, shared by the backends (ioredis' idea, applied to every store).

An enqueue issued while none is in flight goes out at once, alone. Enqueues issued while one is in
flight (many coroutines producing at once, like the requests of an ASGI app) wait, then go out together
through the backend's `enqueue_many`: one script call (Redis) or one transaction (SQL) per batch.
Each caller gets its own result; when a batch fails, each of its callers gets the error. A caller
cancelled before its batch is sent is not queued.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from perfkit.jobs.models import JobRecord

BATCH = 500  # jobs per call: keeps one Redis script (it blocks Redis) or transaction to a few ms
BATCH_BYTES = 4 * 1024**2

T = TypeVar("T")
Result = tuple[str, bool]
_Item = tuple[JobRecord, "asyncio.Future[Result]"]


class EnqueuePipeline:
    def __init__(self, send_many: Callable[[Sequence[JobRecord]], Awaitable[list[Result]]]) -> None:
        self._send_many = send_many
        self._pending: list[_Item] = []
        self._in_flight = 0
        self._flusher: asyncio.Task[None] | None = None

    async def enqueue(self, record: JobRecord, send_one: Callable[[JobRecord], Awaitable[Result]]) -> Result:
        if not self._in_flight and not self._pending:  # nothing to share a round trip with: go now
            self._in_flight += 1
            try:
                return await send_one(record)
            finally:
                self._in_flight -= 1
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._pending.append((record, future))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush(), name="perfkit-enqueue-pipeline")
        return await future

    async def _flush(self) -> None:
        """Send every enqueue that piled up, in calls of up to `BATCH` jobs, until none is left."""
        batch: list[_Item] = []
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                batch = [item for item in batch if not item[1].done()]  # a caller cancelled before sending
                calls = chunks(batch, [r.payload for r, _ in batch])
                if len(calls) == 1:  # the usual case: no gather (a task per call) needed
                    await self._send(calls[0])
                else:
                    await asyncio.gather(*(self._send(chunk) for chunk in calls))
        except BaseException as exc:  # cancelled (loop shutting down): no caller may wait forever
            for _, future in [*batch, *self._pending]:
                if future.done():
                    continue
                if isinstance(exc, Exception):
                    future.set_exception(exc)
                else:
                    future.cancel()
            self._pending = []
            raise
        finally:
            self._flusher = None

    async def _send(self, items: list[_Item]) -> None:
        try:
            results = await self._send_many([record for record, _ in items])
        except Exception as exc:  # every job of this call failed together: each caller gets the error
            for _, future in items:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), result in zip(items, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def close(self) -> None:
        """Wait for the enqueues already accepted to be sent (their callers get any error)."""
        if self._flusher is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._flusher)


def chunks(items: Sequence[T], payloads: Sequence[bytes]) -> list[list[T]]:
    """Split `items` into calls of at most `BATCH` jobs and about `BATCH_BYTES` of payload each."""
    out: list[list[T]] = []
    current: list[T] = []
    size = 0
    for item, payload in zip(items, payloads, strict=True):
        if current and (len(current) >= BATCH or size + len(payload) > BATCH_BYTES):
            out.append(current)
            current, size = [], 0
        current.append(item)
        size += len(payload)
    if current:
        out.append(current)
    return out
