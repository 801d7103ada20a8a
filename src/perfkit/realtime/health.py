"""The hub's readiness check, in the shape `perfkit.monitor`'s `/perf/health/ready` runs (a `name`, a
`critical` flag, an async call returning status/message/details), without importing the monitor."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class HealthResult:
    """What a check returns (status "pass" | "warn" | "fail"), as `perfkit.monitor.CheckResult`."""

    status: str = "pass"
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class HubCheck:
    """`MonitorConfig(checks=[hub.check()])`: fails while the broker is unreachable."""

    health: Callable[[], Awaitable[dict[str, Any]]]
    name: str = "realtime"
    critical: bool = True

    async def __call__(self) -> HealthResult:
        found = await self.health()
        details = {k: v for k, v in found.items() if k not in ("ok", "message")}
        return HealthResult("pass" if found["ok"] else "fail", found["message"], details)
