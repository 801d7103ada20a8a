"""Cache invalidation driven by Django ORM writes: the same semantics as `perfkit.cache.orm` (SQLAlchemy).

    from perfkit.django import register, rows

    register(Ticket, related=[TicketComment, TicketAttachment, Ticket.tags.through], strategy="immediate")

    @cache.cached(ttl=300, key="org:{org_id}:stats", depends_on=[rows(Ticket, organization_id="{org_id}")])
    def org_stats(org_id: int) -> dict: ...

Every ORM write path is seen (`orm_writes`: save, delete and its cascades, `QuerySet.update()`,
`bulk_update()`, `bulk_create()`, `QuerySet.delete()`, the M2M managers), and its dependents are
invalidated after the transaction commits (`orm_apply`: `transaction.on_commit`; nothing on rollback;
a rolled-back savepoint drops its own). The reader's side is the cache's loader guard: a value loaded
before a commit is not stored after that commit's invalidation. Other processes' L1 copies are
evicted by the cache's coherence.
"""

from __future__ import annotations

from typing import Any

from perfkit.django.orm_apply import invalidator, register, unwatch, watch
from perfkit.django.orm_deps import Rows, rows
from perfkit.django.orm_writes import install as install_writes
from perfkit.django.orm_writes import installed, uninstall

__all__ = [
    "Rows",
    "flush",
    "install",
    "installed",
    "register",
    "rows",
    "stats",
    "uninstall",
    "unwatch",
    "watch",
]


def install() -> None:
    """Wire invalidation into the project (called once from `PerfkitConfig.ready()`)."""
    install_writes()


def flush() -> None:
    """Apply every delayed and batched invalidation now (at shutdown, or in tests)."""
    invalidator.applied.flush()


def stats() -> dict[str, dict[str, dict[str, Any]]]:
    """{model label: {strategy: {invalidations, keys_removed, seconds}}}."""
    return invalidator.applied.stats()
