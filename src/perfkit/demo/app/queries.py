"""Each endpoint's work twice: the way slow apps do it, and the way perfkit's report recommends.

Both variants of a pair return identical data (tests check it), so the demo compares like with like.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from perfkit.cache import Cache
from perfkit.demo.app.models import PRIORITIES, STATUSES, Ticket, TicketComment

PAGE = 25


# -- statistics: 11 COUNT queries vs one aggregate -----------------------------------------------------


async def stats_naive(session: AsyncSession, org_id: int) -> dict[str, Any]:
    base = select(func.count()).select_from(Ticket).where(Ticket.organization_id == org_id)
    out: dict[str, Any] = {"total": await session.scalar(base)}
    for status in STATUSES:
        out[status] = await session.scalar(base.where(Ticket.status == status))
    for priority in PRIORITIES:
        out[f"priority_{priority}"] = await session.scalar(base.where(Ticket.priority == priority))
    return out


async def stats_fast(session: AsyncSession, org_id: int) -> dict[str, Any]:
    columns = [func.count().label("total")]
    columns += [func.count().filter(Ticket.status == s).label(s) for s in STATUSES]
    columns += [func.count().filter(Ticket.priority == p).label(f"priority_{p}") for p in PRIORITIES]
    row = (await session.execute(select(*columns).where(Ticket.organization_id == org_id))).one()
    return dict(row._mapping)


# -- ticket list with comments: N+1 lazy loads vs selectinload ------------------------------------------


def _ticket_json(ticket: Ticket, comments: list[TicketComment]) -> dict[str, Any]:
    return {
        "id": ticket.id,
        "title": ticket.title,
        "status": ticket.status,
        "priority": ticket.priority,
        "comments": [{"id": c.id, "author_id": c.author_id, "body": c.body} for c in comments],
    }


def _page(org_id: int) -> Any:
    return select(Ticket).where(Ticket.organization_id == org_id).order_by(Ticket.id.desc()).limit(PAGE)


async def tickets_naive(session: AsyncSession, org_id: int) -> list[dict[str, Any]]:
    tickets = (await session.scalars(_page(org_id))).all()
    return [_ticket_json(t, await t.awaitable_attrs.comments) for t in tickets]  # one query per ticket


async def tickets_fast(session: AsyncSession, org_id: int) -> list[dict[str, Any]]:
    tickets = (await session.scalars(_page(org_id).options(selectinload(Ticket.comments)))).all()
    return [_ticket_json(t, t.comments) for t in tickets]


# -- organization dashboard: computed on every request vs cached, invalidated by writes -----------------


async def dashboard_naive(session: AsyncSession, org_id: int) -> dict[str, Any]:
    stats = await stats_fast(session, org_id)
    recent = (
        await session.execute(
            select(Ticket.id, Ticket.title, Ticket.status)
            .where(Ticket.organization_id == org_id)
            .order_by(Ticket.created_at.desc(), Ticket.id.desc())
            .limit(10)
        )
    ).all()
    busiest = (
        await session.execute(
            select(Ticket.assignee_id, func.count().label("n"))
            .where(Ticket.organization_id == org_id, Ticket.status.in_(("open", "in_progress")))
            .group_by(Ticket.assignee_id)
            .order_by(func.count().desc(), Ticket.assignee_id)
            .limit(5)
        )
    ).all()
    return {
        "organization_id": org_id,
        "stats": stats,
        "recent": [dict(r._mapping) for r in recent],
        "busiest_assignees": [dict(r._mapping) for r in busiest],
    }


def make_dashboard_fast(cache: Cache) -> Any:
    @cache.cached(ttl=300, key="org:{org_id}:dashboard", depends_on=[Ticket.organization_id == "{org_id}"])
    async def dashboard(org_id: int, session: AsyncSession) -> dict[str, Any]:
        return await dashboard_naive(session, org_id)

    async def dashboard_fast(session: AsyncSession, org_id: int) -> dict[str, Any]:
        result: dict[str, Any] = await dashboard(org_id, session)
        return result

    return dashboard_fast


# -- ticket search: a query the index cannot serve vs one it can -----------------------------------------


async def search_naive(session: AsyncSession, assignee_id: int, status: str) -> list[dict[str, Any]]:
    # `+ 0` hides the column from the planner: what a missing index costs, on SQLite and PostgreSQL alike
    rows = await session.execute(
        select(Ticket.id, Ticket.title, Ticket.priority)
        .where(Ticket.assignee_id + 0 == assignee_id, Ticket.status == status)
        .order_by(Ticket.id)
    )
    return [dict(r._mapping) for r in rows]


async def search_fast(session: AsyncSession, assignee_id: int, status: str) -> list[dict[str, Any]]:
    rows = await session.execute(
        select(Ticket.id, Ticket.title, Ticket.priority)
        .where(Ticket.assignee_id == assignee_id, Ticket.status == status)
        .order_by(Ticket.id)
    )
    return [dict(r._mapping) for r in rows]
