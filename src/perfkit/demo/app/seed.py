"""Seeding at realistic volume, fast: Core bulk inserts of pre-built rows, reused between runs.

The default scale is the issue's figure (50 organizations, 5,000 users, 200,000 tickets, 500,000
comments); `scale` shrinks it for tests. A `demo_meta` row records what was seeded, so a second run
with the same scale reuses the database instead of seeding again.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, insert, select

from perfkit.demo.app.models import (
    PRIORITIES,
    STATUSES,
    Base,
    Organization,
    Ticket,
    TicketAttachment,
    TicketComment,
    TicketTag,
    User,
    WorkOrder,
)

_metadata = MetaData()
demo_meta = Table(
    "demo_meta", _metadata, Column("id", Integer, primary_key=True), Column("seeded", String(100))
)
_TAGS = ("billing", "login", "printer", "network", "vpn", "email", "hardware", "onboarding")
_CHUNK = 20_000


@dataclass(frozen=True)
class Volume:
    organizations: int = 50
    users: int = 5_000
    tickets: int = 200_000
    comments: int = 500_000

    def scaled(self, scale: float) -> Volume:
        return Volume(
            max(2, int(self.organizations * min(1.0, scale * 10))),
            max(10, int(self.users * scale)),
            max(50, int(self.tickets * scale)),
            max(100, int(self.comments * scale)),
        )

    @property
    def label(self) -> str:
        return f"{self.organizations}/{self.users}/{self.tickets}/{self.comments}"


def _insert(engine: Engine, table: Any, rows: list[dict[str, Any]]) -> None:
    with engine.begin() as conn:
        for i in range(0, len(rows), _CHUNK):
            conn.execute(insert(table), rows[i : i + _CHUNK])


def seed(engine: Engine, scale: float = 1.0, *, seed_value: int = 7) -> tuple[Volume, float, bool]:
    """Create and fill the schema unless it already holds this volume: (volume, seconds, reused)."""
    volume = Volume().scaled(scale)
    start = time.perf_counter()
    _metadata.create_all(engine)
    with engine.connect() as conn:
        done = conn.execute(select(demo_meta.c.seeded)).scalar()
    if done == volume.label:
        return volume, time.perf_counter() - start, True
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    rnd = random.Random(seed_value)
    now = dt.datetime(2026, 11, 1)
    orgs = volume.organizations
    users_per_org = max(1, volume.users // orgs)
    _insert(engine, Organization.__table__, [{"id": i, "name": f"Org {i}"} for i in range(1, orgs + 1)])
    _insert(
        engine,
        User.__table__,
        [
            {
                "id": i,
                "organization_id": (i - 1) // users_per_org % orgs + 1,
                "name": f"user{i}",
                "email": f"user{i}@example.test",
            }
            for i in range(1, volume.users + 1)
        ],
    )

    def user_of(org: int) -> int:
        return (org - 1) * users_per_org + rnd.randrange(users_per_org) + 1

    tickets: list[dict[str, Any]] = []
    for i in range(1, volume.tickets + 1):
        org = rnd.randrange(orgs) + 1
        tickets.append(
            {
                "id": i,
                "organization_id": org,
                "requester_id": user_of(org),
                "assignee_id": user_of(org) if rnd.random() < 0.8 else None,
                "status": rnd.choices(STATUSES, (30, 15, 10, 20, 20, 5))[0],
                "priority": rnd.choices(PRIORITIES, (40, 35, 20, 5))[0],
                "title": f"Ticket {i}: {rnd.choice(_TAGS)} issue",
                "created_at": now - dt.timedelta(minutes=rnd.randrange(525_600)),
            }
        )
    _insert(engine, Ticket.__table__, tickets)
    org_of = {t["id"]: t["organization_id"] for t in tickets}
    comments: list[dict[str, Any]] = []
    for i in range(1, volume.comments + 1):
        ticket = rnd.randrange(volume.tickets) + 1
        comments.append(
            {
                "id": i,
                "ticket_id": ticket,
                "author_id": user_of(org_of[ticket]),
                "body": "Thanks, looking into it." if i % 3 else "Could you send a screenshot?",
                "created_at": now - dt.timedelta(minutes=rnd.randrange(525_600)),
            }
        )
    _insert(engine, TicketComment.__table__, comments)
    n_small = max(10, volume.tickets // 10)
    _insert(
        engine,
        TicketAttachment.__table__,
        [
            {
                "id": i,
                "ticket_id": rnd.randrange(volume.tickets) + 1,
                "filename": f"file{i}.png",
                "size": rnd.randrange(1, 5_000_000),
            }
            for i in range(1, n_small + 1)
        ],
    )
    _insert(
        engine,
        TicketTag.__table__,
        [
            {"id": i, "ticket_id": rnd.randrange(volume.tickets) + 1, "tag": rnd.choice(_TAGS)}
            for i in range(1, n_small * 2 + 1)
        ],
    )
    _insert(
        engine,
        WorkOrder.__table__,
        [
            {
                "id": i,
                "organization_id": rnd.randrange(orgs) + 1,
                "ticket_id": rnd.randrange(volume.tickets) + 1,
                "assignee_id": None,
                "status": rnd.choice(("new", "scheduled", "done")),
            }
            for i in range(1, n_small + 1)
        ],
    )
    with engine.begin() as conn:
        conn.execute(demo_meta.delete())
        conn.execute(insert(demo_meta).values(id=1, seeded=volume.label))
    return volume, time.perf_counter() - start, False
