"""Each endpoint's work twice, in the Django ORM (async): the same pairs and the same data as
`perfkit.demo.app.queries`, the naive way and the way perfkit's report recommends."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

from django.db.models import Count, F, Q, QuerySet

from perfkit.demo.app.models import PRIORITIES, STATUSES
from perfkit.demo.app.queries import EXPORT_CHUNK, EXPORT_COLUMNS, PAGE, Progress, send_message
from perfkit.demo.django_app.models import Notification, Ticket, TicketComment, User

# -- statistics: 11 COUNT queries vs one aggregate -----------------------------------------------------


async def stats_naive(org_id: int) -> dict[str, Any]:
    base = Ticket.objects.filter(organization_id=org_id)
    out: dict[str, Any] = {"total": await base.acount()}
    for status in STATUSES:
        out[status] = await base.filter(status=status).acount()
    for priority in PRIORITIES:
        out[f"priority_{priority}"] = await base.filter(priority=priority).acount()
    return out


async def stats_fast(org_id: int) -> dict[str, Any]:
    counts: dict[str, Any] = {"total": Count("id")}
    counts |= {s: Count("id", filter=Q(status=s)) for s in STATUSES}
    counts |= {f"priority_{p}": Count("id", filter=Q(priority=p)) for p in PRIORITIES}
    row: dict[str, Any] = await Ticket.objects.filter(organization_id=org_id).aaggregate(**counts)
    return row


# -- ticket list with comments: N+1 lazy loads vs prefetch_related ---------------------------------------


def _ticket_json(ticket: Ticket, comments: list[TicketComment]) -> dict[str, Any]:
    return {
        "id": ticket.id,
        "title": ticket.title,
        "status": ticket.status,
        "priority": ticket.priority,
        "comments": [{"id": c.id, "author_id": c.author_id, "body": c.body} for c in comments],
    }


def _page(org_id: int) -> QuerySet[Ticket]:
    return Ticket.objects.filter(organization_id=org_id).order_by("-id")[:PAGE]


async def tickets_naive(org_id: int) -> list[dict[str, Any]]:
    # one query per ticket: `ticket.comments.all()` is a lazy load of the reverse relation
    return [_ticket_json(t, [c async for c in t.comments.all()]) async for t in _page(org_id)]


async def tickets_fast(org_id: int) -> list[dict[str, Any]]:
    page = _page(org_id).prefetch_related("comments")
    return [_ticket_json(t, list(t.comments.all())) async for t in page]  # 2 queries


# -- organization dashboard: computed on every request vs cached, invalidated by writes -----------------


async def dashboard(org_id: int) -> dict[str, Any]:
    """3 queries; the fast variant caches this (perfkit.demo.django_app.views)."""
    base = Ticket.objects.filter(organization_id=org_id)
    recent = base.order_by("-created_at", "-id").values("id", "title", "status")[:10]
    busiest = (
        base.filter(status__in=("open", "in_progress"))
        .values("assignee_id")
        .annotate(n=Count("id"))
        .order_by("-n", "assignee_id")[:5]
    )
    return {
        "organization_id": org_id,
        "stats": await stats_fast(org_id),
        "recent": [r async for r in recent],
        "busiest_assignees": [r async for r in busiest],
    }


# -- ticket search: a query the index cannot serve vs one it can -----------------------------------------


async def search_naive(assignee_id: int, status: str) -> list[dict[str, Any]]:
    # `+ 0` hides the column from the planner: what a missing index costs, on SQLite and PostgreSQL alike
    rows = (
        Ticket.objects.alias(unindexed=F("assignee_id") + 0)
        .filter(unindexed=assignee_id, status=status)
        .order_by("id")
        .values("id", "title", "priority")
    )
    return [r async for r in rows]


async def search_fast(assignee_id: int, status: str) -> list[dict[str, Any]]:
    rows = Ticket.objects.filter(assignee_id=assignee_id, status=status).order_by("id")
    return [r async for r in rows.values("id", "title", "priority")]


# -- report export: built inside the request vs in a background job with progress -----------------------


async def export_csv(org_id: int, progress: Progress | None = None) -> str:
    """Every ticket of the organization as CSV, read in keyset-paginated chunks (progress per chunk)."""
    tickets = Ticket.objects.filter(organization_id=org_id)
    total = await tickets.acount()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    last, done = 0, 0
    while True:
        chunk = tickets.filter(id__gt=last).order_by("id").values_list(*EXPORT_COLUMNS)[:EXPORT_CHUNK]
        rows = [r async for r in chunk]
        if not rows:
            break
        writer.writerows((*r[:-1], r[-1].isoformat()) for r in rows)
        last, done = rows[-1][0], done + len(rows)
        if progress is not None and total:
            await progress(done / total, f"{done} of {total} tickets")
    return out.getvalue()


# -- bulk notification: every user's message sent inside the request vs by a job -------------------------


async def notify_org(org_id: int, message: str, progress: Progress | None = None) -> dict[str, Any]:
    """Send `message` to every user of the organization and record each send; returns what was sent."""
    members = User.objects.filter(organization_id=org_id).order_by("id").values_list("id", "email")
    users = [u async for u in members]
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    for i, (_, email) in enumerate(users, 1):
        await send_message(email, message)
        if progress is not None and i % 20 == 0:
            await progress(i / len(users), f"{i} of {len(users)} users")
    if users:
        await Notification.objects.abulk_create(
            [Notification(organization_id=org_id, user_id=u, message=message, sent_at=now) for u, _ in users]
        )
    return {"organization_id": org_id, "message": message, "sent": len(users), "users": [u for u, _ in users]}
