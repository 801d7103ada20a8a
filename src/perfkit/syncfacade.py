"""The sync facade pattern: a background event loop that lets synchronous code call perfkit's async
implementation.

- `Portal(name)`: one daemon thread running one event loop; `portal.call(coro)` runs a coroutine there
  and waits for its result, `portal.close()` stops the loop.
- `SyncFacade(name)`: the base of the blocking facades (`SyncCache`, `SyncJobQueue`): one portal each,
  `call(coro)`, `aclose()` (what a subclass closes on the portal loop) and `close()`.

perfkit has one implementation of each part, async; the sync facades (`SyncCache`, `SyncJobQueue`)
submit coroutines to this loop instead of keeping a second, blocking copy of the logic. The thread
starts on first use (never at import) and stops on `close()`.

The facade pattern, shared by every part: the async object (`Cache`, `JobQueue`) caches one facade
(`cache.sync`, `jobs.sync()`), so one owner has one background loop however often it is asked for;
the facade drives a sibling of its owner (same config, its own connections: connections belong to
the loop that opened them) through `SyncFacade.call`, and `SyncFacade.close` closes the sibling on
that loop, then stops the loop. A closed facade starts again on its next call.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, Self, TypeVar

__all__ = ["Portal", "SyncFacade"]

T = TypeVar("T")


class Portal:
    """One daemon thread running one event loop; `call()` runs a coroutine there and waits for it."""

    def __init__(self, name: str = "perfkit-portal") -> None:
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def started(self) -> bool:
        """True while the loop thread runs (from the first `call()` until `close()`)."""
        return self._loop is not None

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


class SyncFacade:
    """Base of the blocking facades: one portal per facade; subclasses run their calls through `call()`
    and close what they opened on the portal loop in `aclose()`."""

    def __init__(self, name: str) -> None:
        self.portal = Portal(name)

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on this facade's loop and wait for its result."""
        return self.portal.call(coro)

    async def aclose(self) -> None:
        """Close the connections this facade opened (runs on its loop); nothing by default."""

    def close(self) -> None:
        """Close the connections and stop the background loop; safe to call twice."""
        if self.portal.started:
            self.portal.call(self.aclose())
        self.portal.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
