"""A background event loop that lets synchronous code call perfkit's async implementation.

perfkit has one implementation of each part, async; the sync facades (`SyncCache`, ...) submit
coroutines to this loop instead of keeping a second, blocking copy of the logic. The thread starts on
first use (never at import) and stops on `close()`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class Portal:
    """One daemon thread running one event loop; `call()` runs a coroutine there and waits for it."""

    def __init__(self, name: str = "perfkit-portal") -> None:
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            with self._lock:
                if self._loop is None:
                    loop = asyncio.new_event_loop()
                    started = threading.Event()

                    def run() -> None:
                        asyncio.set_event_loop(loop)
                        loop.call_soon(started.set)
                        loop.run_forever()

                    self._thread = threading.Thread(target=run, name=self._name, daemon=True)
                    self._thread.start()
                    started.wait()
                    self._loop = loop
        return self._loop

    @property
    def started(self) -> bool:
        """True once the loop thread runs (the first `call`), until `close`."""
        return self._loop is not None

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on the portal loop and return its result (re-raising its exception)."""
        loop = self.loop
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("a sync perfkit API was called from inside its own portal loop")
        return asyncio.run_coroutine_threadsafe(coro, loop).result()

    def close(self) -> None:
        """Stop the loop and join its thread; safe to call twice."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        loop.close()
