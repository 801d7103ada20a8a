"""`SyncHub` (`hub.sync`): publishing for code that is not async (Django views, scripts, sync routes).

A facade, not a second implementation (`perfkit.syncfacade.SyncFacade`, as `Cache.sync` and
`JobQueue.sync()`). From a thread next to a running hub (a sync route of the app that serves the
connections), the call runs on the hub's own loop. Elsewhere it runs on the facade's background loop:
with Redis, through a sibling hub with its own connection; with `memory://`, on the hub itself (one
process has one history).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from perfkit.realtime.protocol import Position
from perfkit.syncfacade import SyncFacade

if TYPE_CHECKING:
    from perfkit.realtime.hub import Hub

TIMEOUT = 10.0  # seconds a sync publish waits for the hub's loop


class SyncHub(SyncFacade):
    def __init__(self, hub: Hub) -> None:
        super().__init__("perfkit-realtime-sync")
        self._hub = hub
        self._inner = hub if hub.url.startswith("memory:") else hub.sibling()

    def publish(self, channel: str, data: Any) -> Position:
        """`await hub.publish(channel, data)` without await; returns the message's (epoch, offset)."""
        loop = self._hub.loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not None and running is loop:
            raise RuntimeError(
                "hub.sync.publish was called on the hub's own event loop: use await hub.publish(...)"
            )
        if loop is not None and loop.is_running():
            return asyncio.run_coroutine_threadsafe(self._hub.publish(channel, data), loop).result(TIMEOUT)
        return self.call(self._inner.publish(channel, data))

    async def aclose(self) -> None:
        if self._inner is not self._hub:
            await self._inner.close()
