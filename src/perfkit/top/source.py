"""Where `perfkit top` reads from: an app's monitor over HTTP, or the monitor store itself.

Both give a `Sample`: the cumulative merged snapshot of one app (all its processes), its processes'
CPU and memory, its ready jobs per queue, and when it was taken. `top` subtracts two samples.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

from perfkit.errors import BackendError, ConfigurationError, MissingDependencyError
from perfkit.monitor.snapshots import Snapshot, add, without_gauges
from perfkit.monitor.store import registry
from perfkit.monitor.store.base import RETIRED

FRESH_S = 15.0  # a process whose last publication is older is shown as stale (store source)


@dataclass
class Sample:
    name: str  # the app: its URL or store URL
    t: float
    snapshot: Snapshot
    processes: list[dict[str, Any]]
    queues: dict[str, int] | None


class Source(Protocol):
    name: str

    async def sample(self) -> Sample: ...

    async def close(self) -> None: ...


class HttpSource:
    """`GET {url}{prefix}/api/top` with the monitor's bearer token."""

    def __init__(self, url: str, token: str | None, prefix: str = "/perf", timeout: float = 5.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigurationError("url", f"{url!r} is not an http:// or https:// URL")
        try:
            import httpx
        except ModuleNotFoundError as exc:
            raise MissingDependencyError("perfkit top", "httpx", "cli") from exc
        self.name = url.rstrip("/")
        self.endpoint = self.name + prefix + "/api/top"
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.AsyncClient(timeout=timeout, headers=headers)
        self._errors = httpx.HTTPError

    async def sample(self) -> Sample:
        try:
            response = await self._client.get(self.endpoint)
        except self._errors as exc:
            raise BackendError(f"{self.endpoint}: {type(exc).__name__} {exc}".strip()) from exc
        if response.status_code == 401:
            raise ConfigurationError("token", f"{self.endpoint} needs the monitor token (--token)")
        if response.status_code != 200:
            raise BackendError(f"{self.endpoint} answered {response.status_code}")
        data = response.json()
        return Sample(self.name, data["t"], data["snapshot"], data["processes"], data.get("queues"))

    async def close(self) -> None:
        await self._client.aclose()


class StoreSource:
    """The monitor store the app's workers publish to (`sqlite:///.perfkit/monitor.db`, `redis://…`)."""

    def __init__(self, url: str) -> None:
        self.name = url
        self._store = registry.create(url, "store")

    async def sample(self) -> Sample:
        now = time.time()
        parts, processes = [], []
        for proc, at, snap in await self._store.snapshots():
            fresh = proc != RETIRED and at >= now - FRESH_S
            parts.append(snap if fresh else without_gauges(snap))
            if proc != RETIRED:
                processes.append({"proc": proc, "at": at, "fresh": fresh, "system": snap.get("system", {})})
        merged = add(parts)
        return Sample(
            self.name, now, {"started": merged["started"], "metrics": merged["metrics"]}, processes, None
        )

    async def close(self) -> None:
        await self._store.close()
