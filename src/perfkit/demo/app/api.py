"""The demo's HTTP API: `/naive/...` and `/fast/...` variants of each endpoint, and a write endpoint.

`create_app(state)` takes everything already built (engine, session factory, cache, invalidator), so
tests drive it in-process and `perfkit demo` serves it with uvicorn.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, FastAPI, HTTPException
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from perfkit.cache import Cache
from perfkit.cache.orm import CacheInvalidator
from perfkit.demo.app import queries
from perfkit.demo.app.models import STATUSES, Ticket


@dataclass
class DemoState:
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    cache: Cache
    invalidator: CacheInvalidator

    @classmethod
    def build(cls, engine: AsyncEngine, cache: Cache) -> DemoState:
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        invalidator = CacheInvalidator(cache)
        invalidator.instrument(sessions)
        return cls(engine, sessions, cache, invalidator)


def create_app(state: DemoState) -> FastAPI:
    app = FastAPI(title="perfkit demo: support tickets")
    dashboard_fast = queries.make_dashboard_fast(state.cache)

    async def session() -> AsyncIterator[AsyncSession]:
        async with state.sessions() as s:
            yield s

    Session = Depends(session)  # reads as a type in the signatures below

    def pair(name: str, naive: Callable[..., Awaitable[Any]], fast: Callable[..., Awaitable[Any]]) -> None:
        """Register /naive/<name>/{org_id} and /fast/<name>/{org_id}."""

        async def run_naive(org_id: int, s: AsyncSession = Session) -> Any:
            return await naive(s, org_id)

        async def run_fast(org_id: int, s: AsyncSession = Session) -> Any:
            return await fast(s, org_id)

        app.get(f"/naive/{name}/{{org_id}}", name=f"naive_{name}")(run_naive)
        app.get(f"/fast/{name}/{{org_id}}", name=f"fast_{name}")(run_fast)

    pair("stats", queries.stats_naive, queries.stats_fast)
    pair("tickets", queries.tickets_naive, queries.tickets_fast)
    pair("dashboard", queries.dashboard_naive, dashboard_fast)

    @app.get("/naive/search", name="naive_search")
    async def search_naive(assignee_id: int, status: str = "open", s: AsyncSession = Session) -> Any:
        return await queries.search_naive(s, assignee_id, status)

    @app.get("/fast/search", name="fast_search")
    async def search_fast(assignee_id: int, status: str = "open", s: AsyncSession = Session) -> Any:
        return await queries.search_fast(s, assignee_id, status)

    @app.post("/tickets/{ticket_id}/status/{status}", name="set_status")
    async def set_status(ticket_id: int, status: str, s: AsyncSession = Session) -> dict[str, Any]:
        if status not in STATUSES:
            raise HTTPException(422, f"status must be one of {list(STATUSES)}")
        ticket = await s.get(Ticket, ticket_id)
        if ticket is None:
            raise HTTPException(404, f"no ticket {ticket_id}")
        ticket.status = status
        await s.commit()  # the invalidator clears this organization's cached dashboard after commit
        return {"id": ticket_id, "status": status, "organization_id": ticket.organization_id}

    return app
