"""The processing pool: image work runs off the event loop, in a bounded set of threads, with a timeout.

At most `workers` jobs run and `queue` more wait; the next one is refused at once (`BusyError`, 503)
rather than queued without bound. A job past its timeout answers 503 to its caller; its thread cannot
be interrupted (Pillow is inside C code), so its slot is freed only when it really ends: a burst of
slow inputs fills the pool and is refused, it never piles up threads. The limits on the input (bytes,
pixels, frames, read before decoding) are what bound each job's running time.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from perfkit.images.errors import BusyError

__all__ = ["WorkerPool"]

T = TypeVar("T")


class WorkerPool:
    """`await pool.run(fn)`: `fn()` in one of `workers` threads, at most `workers + queue` admitted."""

    def __init__(self, workers: int, queue: int, timeout: float) -> None:
        self.workers = workers
        self.capacity = workers + queue
        self.timeout = timeout
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="perfkit-images")
        self._lock = threading.Lock()
        self._admitted = 0

    @property
    def admitted(self) -> int:
        """Jobs running or waiting right now (a job past its timeout counts until its thread ends)."""
        return self._admitted

    async def run(self, fn: Callable[[], T]) -> T:
        with self._lock:
            if self._admitted >= self.capacity:
                raise BusyError(f"image processing is busy ({self.capacity} jobs running or waiting)")
            self._admitted += 1
        try:
            future: Future[T] = self._executor.submit(fn)
        except BaseException:
            self._release(None)
            raise
        future.add_done_callback(self._release)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self.timeout)
        except TimeoutError:
            future.cancel()  # frees the slot now if it had not started; a running one ends on its own
            raise BusyError(f"image processing took longer than {self.timeout:g} s") from None

    def _release(self, _: object) -> None:
        with self._lock:
            self._admitted -= 1

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
