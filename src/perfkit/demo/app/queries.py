"""Each endpoint's work twice: the way slow apps do it, and the way perfkit's report recommends.

Both variants of a pair return identical data (tests check it), so the demo compares like with like.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from perfkit.cache import Cache
from perfkit.demo.app.models import PRIORITIES, STATUSES, Notification, Ticket, TicketComment, User
from perfkit.loader.orm import relationship_loader

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


async def tickets_loader(session: AsyncSession, org_id: int) -> list[dict[str, Any]]:
    """`tickets_naive` with its N+1 removed by one line: a batching loader fills every ticket's comments."""
    tickets = (await session.scalars(_page(org_id))).all()
    await relationship_loader(session, Ticket.comments).load_many(tickets)  # one SELECT ... IN, not 25
    return [_ticket_json(t, t.comments) for t in tickets]


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


# -- report export: built inside the request vs in a background job with progress -----------------------

EXPORT_COLUMNS = ("id", "title", "status", "priority", "assignee_id", "created_at")
EXPORT_CHUNK = 500
Progress = Callable[[float, str], Awaitable[None]]


async def export_csv(session: AsyncSession, org_id: int, progress: Progress | None = None) -> str:
    """Every ticket of the organization as CSV, read in keyset-paginated chunks (progress per chunk)."""
    total = await session.scalar(
        select(func.count()).select_from(Ticket).where(Ticket.organization_id == org_id)
    )
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    columns = [getattr(Ticket, c) for c in EXPORT_COLUMNS]
    last, done = 0, 0
    while True:
        rows = (
            await session.execute(
                select(*columns)
                .where(Ticket.organization_id == org_id, Ticket.id > last)
                .order_by(Ticket.id)
                .limit(EXPORT_CHUNK)
            )
        ).all()
        if not rows:
            break
        writer.writerows((*r[:-1], r[-1].isoformat()) for r in rows)
        last, done = rows[-1][0], done + len(rows)
        if progress is not None and total:
            await progress(done / total, f"{done} of {total} tickets")
    return out.getvalue()


# -- bulk notification: every user's message sent inside the request vs by a job -------------------------

PROVIDER_LATENCY = 0.001  # the demo's stand-in for a mail/push provider: one network round trip per message


async def send_message(email: str, message: str) -> None:
    """What a provider call costs the caller (the demo sends nothing off this machine)."""
    await asyncio.sleep(PROVIDER_LATENCY)


async def notify_org(
    session: AsyncSession, org_id: int, message: str, progress: Progress | None = None
) -> dict[str, Any]:
    """Send `message` to every user of the organization and record each send; returns what was sent."""
    users = (
        await session.execute(
            select(User.id, User.email).where(User.organization_id == org_id).order_by(User.id)
        )
    ).all()
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    for i, (_, email) in enumerate(users, 1):
        await send_message(email, message)
        if progress is not None and i % 20 == 0:
            await progress(i / len(users), f"{i} of {len(users)} users")
    if users:
        await session.execute(
            insert(Notification),
            [{"organization_id": org_id, "user_id": u, "message": message, "sent_at": now} for u, _ in users],
        )
    await session.commit()
    return {"organization_id": org_id, "message": message, "sent": len(users), "users": [u for u, _ in users]}
