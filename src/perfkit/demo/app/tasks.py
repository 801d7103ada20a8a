"""The demo's background jobs: report export and bulk notification, run by `perfkit worker`.

`perfkit worker perfkit.demo.app.tasks:jobs` finds the queue through the module attribute `jobs`,
built on first access from the `PERFKIT_DEMO_*` settings that `perfkit demo` passes to its processes.
Finished exports are stored in the shared cache (L2), so any app process on any machine can serve them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from perfkit.cache import Cache
from perfkit.demo.app import queries, runtime
from perfkit.demo.settings import DemoSettings
from perfkit.jobs import JobQueue
from perfkit.jobs.task import Task
from perfkit.realtime import Hub

EXPORT_TTL = 3600.0
QUEUE = "demo"


def export_key(job_id: str) -> str:
    return f"export:{job_id}"


@dataclass
class _Resources:
    """Opened on the first job in a worker process (never at import); closed with the queue."""

    settings: DemoSettings
    engine: AsyncEngine | None = None
    sessions: async_sessionmaker[AsyncSession] | None = None
    cache: Cache | None = None
    owns_cache: bool = False  # opened here, not the caller's
    hub: Hub | None = None  # the worker's: job events to the live page (closed with the queue)

    def open(self) -> tuple[async_sessionmaker[AsyncSession], Cache]:
        if self.sessions is None:
            self.engine = runtime.async_engine(self.settings)
            self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        if self.cache is None:
            self.cache = runtime.cache(self.settings)
            self.owns_cache = True
        return self.sessions, self.cache

    async def close(self) -> None:
        engine, self.engine, self.sessions = self.engine, None, None
        if engine is not None:
            await engine.dispose()
        if self.owns_cache and self.cache is not None:
            cache, self.cache, self.owns_cache = self.cache, None, False
            await cache.close()
        if self.hub is not None:
            hub, self.hub = self.hub, None
            await hub.close()


class _DemoQueue(JobQueue):
    """The demo's queue: closing it (`perfkit worker` does on exit) also closes what its tasks opened."""

    def __init__(self, url: str, resources: _Resources) -> None:
        super().__init__(url)
        self._resources = resources

    async def close(self) -> None:
        try:
            await super().close()
        finally:
            await self._resources.close()


@dataclass(frozen=True)
class DemoJobs:
    """The queue and the two tasks the app enqueues."""

    queue: JobQueue
    export_report: Task
    notify_org: Task


def build_jobs(settings: DemoSettings, *, cache: Cache | None = None, hub: Hub | None = None) -> DemoJobs:
    """The queue with the demo's tasks; `cache` shares the caller's cache instead of opening another;
    `hub` (closed with the queue) gets every job event, for the live page."""
    res = _Resources(settings, cache=cache, hub=hub)
    jobs = _DemoQueue(settings.jobs_url, res)
    if hub is not None:
        hub.follow_jobs(jobs)

    async def export_report(ctx: Any, org_id: int) -> dict[str, Any]:
        sessions, cache = res.open()
        async with sessions() as session:
            body = await queries.export_csv(session, org_id, ctx.progress)
        await cache.set(export_key(ctx.job_id), body, ttl=EXPORT_TTL)
        return {"organization_id": org_id, "rows": body.count("\n") - 1, "bytes": len(body)}

    async def notify_org(ctx: Any, org_id: int, message: str) -> dict[str, Any]:
        sessions, _ = res.open()
        async with sessions() as session:
            return await queries.notify_org(session, org_id, message, ctx.progress)

    return DemoJobs(
        jobs,
        jobs.task(export_report, queue=QUEUE, priority="medium", retries=2, timeout=120),
        jobs.task(notify_org, queue=QUEUE, priority="high", retries=3, timeout=120),
    )


_jobs: JobQueue | None = None


def __getattr__(name: str) -> Any:
    """`jobs`: the queue `perfkit worker` runs, configured from the environment on first access."""
    global _jobs
    if name == "jobs":
        if _jobs is None:
            settings = DemoSettings.from_environ()
            hub = runtime.hub(settings) if runtime.hub_is_shared(settings) else None
            _jobs = build_jobs(settings, hub=hub).queue
        return _jobs
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
