"""The demo's HTTP API: `/naive/...` and `/fast/...` variants of each endpoint, and a write endpoint.

`create_app(state)` takes everything already built (engine, session factory, cache, invalidator), so
tests drive it in-process and `perfkit demo` serves it with uvicorn.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Response
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from perfkit.cache import Cache
from perfkit.cache.orm import CacheInvalidator
from perfkit.demo.app import live, queries
from perfkit.demo.app.models import STATUSES, Ticket
from perfkit.demo.app.tasks import DemoJobs, export_key, job_json, notify_key
from perfkit.errors import ConfigurationError
from perfkit.realtime import Hub

# ids are 32-bit in the schema: a larger one is a 422 naming the parameter, not a database error
Id = Annotated[int, Path(ge=1, le=2**31 - 1)]
QueryId = Annotated[int, Query(ge=1, le=2**31 - 1)]
Message = Annotated[str, Query(min_length=1, max_length=200)]  # the notifications.message column


@dataclass
class DemoState:
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    cache: Cache
    invalidator: CacheInvalidator
    jobs: DemoJobs | None = None  # the export and notification pairs need it
    hub: Hub | None = None  # the live page (/live) needs it

    @classmethod
    def build(
        cls, engine: AsyncEngine, cache: Cache, jobs: DemoJobs | None = None, hub: Hub | None = None
    ) -> DemoState:
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        invalidator = CacheInvalidator(cache)
        invalidator.instrument(sessions)
        return cls(engine, sessions, cache, invalidator, jobs, hub)


def create_app(state: DemoState, lifespan: Any = None) -> FastAPI:
    app = FastAPI(title="perfkit demo: support tickets", lifespan=lifespan)
    dashboard_fast = queries.make_dashboard_fast(state.cache)

    async def session() -> AsyncIterator[AsyncSession]:
        async with state.sessions() as s:
            yield s

    Session = Depends(session)  # reads as a type in the signatures below

    def pair(name: str, naive: Callable[..., Awaitable[Any]], fast: Callable[..., Awaitable[Any]]) -> None:
        """Register /naive/<name>/{org_id} and /fast/<name>/{org_id}."""

        async def run_naive(org_id: Id, s: AsyncSession = Session) -> Any:
            return await naive(s, org_id)

        async def run_fast(org_id: Id, s: AsyncSession = Session) -> Any:
            return await fast(s, org_id)

        app.get(f"/naive/{name}/{{org_id}}", name=f"naive_{name}")(run_naive)
        app.get(f"/fast/{name}/{{org_id}}", name=f"fast_{name}")(run_fast)

    pair("stats", queries.stats_naive, queries.stats_fast)
    pair("tickets", queries.tickets_naive, queries.tickets_fast)
    pair("dashboard", queries.dashboard_naive, dashboard_fast)

    @app.get("/loader/tickets/{org_id}", name="loader_tickets")
    async def tickets_loader(org_id: Id, s: AsyncSession = Session) -> Any:
        """/naive/tickets with the N+1 fixed by one line: perfkit.loader's relationship_loader."""
        return await queries.tickets_loader(s, org_id)

    @app.get("/naive/search", name="naive_search")
    async def search_naive(assignee_id: QueryId, status: str = "open", s: AsyncSession = Session) -> Any:
        return await queries.search_naive(s, assignee_id, status)

    @app.get("/fast/search", name="fast_search")
    async def search_fast(assignee_id: QueryId, status: str = "open", s: AsyncSession = Session) -> Any:
        return await queries.search_fast(s, assignee_id, status)

    @app.post("/tickets/{ticket_id}/status/{status}", name="set_status")
    async def set_status(ticket_id: Id, status: str, s: AsyncSession = Session) -> dict[str, Any]:
        if status not in STATUSES:
            raise HTTPException(422, f"status must be one of {list(STATUSES)}")
        ticket = await s.get(Ticket, ticket_id)
        if ticket is None:
            raise HTTPException(404, f"no ticket {ticket_id}")
        ticket.status = status
        if state.hub is not None:  # the live pages of this organization hear it, after the commit only
            update = {"ticket": ticket_id, "status": status, "title": ticket.title}
            state.hub.publish_on_commit(s, live.org_channel(ticket.organization_id), update)
        await s.commit()  # the invalidator clears this organization's cached dashboard after commit
        return {"id": ticket_id, "status": status, "organization_id": ticket.organization_id}

    if state.jobs is not None:
        _job_endpoints(app, state, state.jobs, Session)
    if state.hub is not None:
        live.add_live(app, state.hub)
    return app


def _csv(body: str) -> Response:
    return Response(body, media_type="text/csv; charset=utf-8")


def _job_endpoints(app: FastAPI, state: DemoState, jobs: DemoJobs, Session: Any) -> None:
    """Export and bulk notification: the request does the work vs a job does it (202 + a status URL)."""

    @app.get("/naive/export/{org_id}", name="naive_export")
    async def export_naive(org_id: Id, s: AsyncSession = Session) -> Response:
        return _csv(await queries.export_csv(s, org_id))

    @app.post("/fast/export/{org_id}", name="fast_export", status_code=202)
    async def export_fast(org_id: Id) -> dict[str, Any]:
        # one export per organization at a time: repeated clicks get the job already under way
        job = await jobs.export_report.enqueue(org_id, key=f"export:{org_id}")
        return job_json(job)

    @app.post("/naive/notify/{org_id}", name="naive_notify")
    async def notify_naive(
        org_id: Id, message: Message = "maintenance tonight", s: AsyncSession = Session
    ) -> Any:
        return await queries.notify_org(s, org_id, message)

    @app.post("/fast/notify/{org_id}", name="fast_notify", status_code=202)
    async def notify_fast(org_id: Id, message: Message = "maintenance tonight") -> dict[str, Any]:
        job = await jobs.notify_org.enqueue(org_id, message, key=notify_key(org_id, message))
        return job_json(job)

    async def find(job_id: str) -> Any:
        try:
            info = await jobs.queue.get(job_id)
        except ConfigurationError as exc:  # not a job id at all
            raise HTTPException(404, str(exc)) from None
        if info is None:
            raise HTTPException(404, f"no job {job_id}")
        return info

    @app.get("/jobs/{job_id}", name="job_status")
    async def job_status(job_id: str) -> dict[str, Any]:
        return job_json(await find(job_id))

    @app.get("/jobs/{job_id}/export.csv", name="job_export")
    async def job_export(job_id: str) -> Response:
        info = await find(job_id)
        body = await state.cache.get(export_key(job_id))
        if body is None:
            raise HTTPException(409, f"export {job_id} is not ready ({info.status})")
        return _csv(body)
