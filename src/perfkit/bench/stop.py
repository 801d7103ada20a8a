"""When a run stops sending: at the end of its schedule, or at once when it is interrupted (Ctrl-C).

Every load loop asks its `Stop` before it sends, so a server slower than the rate cannot stretch a
run: an open-model arrival still unsent `GRACE` seconds after the end is never sent (the driver counts
it as dropped); closed-model users start no request after the end. `wait` then gives the requests in
flight at most the request timeout and cancels what is left, so a run lasts at most its duration,
plus `GRACE`, plus `--timeout` (plus one sweep of the timeout sweeper).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable
from typing import Any

GRACE = 0.5  # timer and scheduling jitter: an arrival due just before the end may leave this late
EARLY = 0.0005  # an arrival due within 0.5 ms is sent at once rather than after a timer round trip
NAP = 0.25  # longest single sleep, so that an interrupt is seen within it
INTERRUPT_GRACE = 0.05  # after Ctrl-C, an arrival due before it whose timer is just firing still goes


class Stop:
    """The end of one run's sending, in `perf_counter()` time; `interrupt()` moves it to now."""

    def __init__(self, end: float, grace: float = GRACE) -> None:
        self.end = end  # no arrival due after it is sent; no closed-model request starts after it
        self.cutoff = end + grace  # no request at all is sent after it
        self.interrupted = False

    def interrupt(self) -> None:
        """Stop sending now (Ctrl-C): arrivals due after now are not sent (nor dropped), what is in
        flight finishes or times out, and the report is written."""
        now = time.perf_counter()
        self.interrupted = True
        self.end = min(self.end, now)
        self.cutoff = min(self.cutoff, now + INTERRUPT_GRACE)

    @property
    def over(self) -> bool:
        """True once no request may be sent any more."""
        return time.perf_counter() >= self.cutoff

    async def sleep_until(self, t: float) -> bool:
        """Sleep until `perf_counter()` reaches `t`; False (at once) when the stop comes first, or
        when `t` is after the end (an interrupt moved it)."""
        while True:
            now = time.perf_counter()
            if now >= self.cutoff or t >= self.end:
                return False
            wait = t - now
            if wait <= EARLY:
                return True
            await asyncio.sleep(min(wait, self.cutoff - now, NAP))

    async def wait(self, aw: Awaitable[Any], in_flight: float) -> None:
        """Await the load `aw` until `in_flight` seconds after the cutoff (re-read: an interrupt moves
        it), then cancel what is left. An error raised by `aw` propagates."""
        task = asyncio.ensure_future(aw)
        try:
            while not task.done():
                left = self.cutoff + in_flight - time.perf_counter()
                if left <= 0:
                    break
                await asyncio.wait({task}, timeout=min(left, NAP))
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if not task.cancelled():
            task.result()
