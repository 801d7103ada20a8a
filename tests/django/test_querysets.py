"""cache_queryset: a queryset's rows cached by SQL, rebuilt as model instances, invalidated by writes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from django.db import connections, transaction
from django.db.models import Count
from django.test.utils import CaptureQueriesContext

from perfkit import Cache
from perfkit.django import cache_queryset
from perfkit.django.invalidation import unwatch
from perfkit.errors import InvalidArgumentError
from tests.conftest import REDIS_URL, require_redis
from tests.django.orm_fixtures import DATABASES, Seeded, make_seeded
from tests.django.tickets.models import Organization, Ticket, TicketComment


@pytest.fixture(params=DATABASES)
def seeded(request: pytest.FixtureRequest) -> Iterator[Seeded]:
    yield from make_seeded(request)


def _queries(seeded: Seeded, fn: object) -> tuple[object, int]:
    with CaptureQueriesContext(connections[seeded.alias]) as captured:
        result = fn()  # type: ignore[operator]
    return result, len(captured)


def test_model_rows_are_cached_and_rebuilt(seeded: Seeded) -> None:
    """The second call runs no query and returns equal, saveable model instances."""
    qs = seeded.objects(Ticket).filter(organization=seeded.org7).order_by("id")
    first, n1 = _queries(seeded, lambda: cache_queryset(seeded.cache, qs, ttl=300))
    again, n2 = _queries(seeded, lambda: cache_queryset(seeded.cache, qs, ttl=300))
    assert (n1, n2) == (1, 0)
    assert again == first == [seeded.t1, seeded.t2]
    assert [t.title for t in again] == ["a", "b"] and again[0].organization_id == seeded.org7.pk
    assert again[0]._state.adding is False and again[0]._state.db == seeded.alias
    again[0].title = "saved from the cache"
    again[0].save()
    assert seeded.objects(Ticket).get(pk=seeded.t1.pk).title == "saved from the cache"


def test_invalidated_by_its_rows_only(seeded: Seeded) -> None:
    """filter(organization=7) is recomputed after a write to org 7's tickets, not to org 8's."""
    qs = seeded.objects(Ticket).filter(organization_id=seeded.org7.pk).order_by("id")
    cache_queryset(seeded.cache, qs, ttl=300)
    seeded.objects(Ticket).filter(pk=seeded.t3.pk).update(title="org 8 change")
    _, n = _queries(seeded, lambda: cache_queryset(seeded.cache, qs, ttl=300))
    assert n == 0
    seeded.objects(Ticket).filter(pk=seeded.t2.pk).update(title="changed")
    rows, n = _queries(seeded, lambda: cache_queryset(seeded.cache, qs, ttl=300))
    assert n == 1 and [t.title for t in rows] == ["a", "changed"]  # type: ignore[attr-defined]


def test_joined_tables_are_dependencies(seeded: Seeded) -> None:
    """A queryset filtering across a join (comments) is invalidated by a write to the joined table."""
    qs = seeded.objects(Ticket).filter(comments__body="first")
    assert cache_queryset(seeded.cache, qs) == [seeded.t1]
    seeded.objects(TicketComment).create(ticket=seeded.t2, body="first")
    assert sorted(t.pk for t in cache_queryset(seeded.cache, qs)) == [seeded.t1.pk, seeded.t2.pk]


def test_values_values_list_and_annotations(seeded: Seeded) -> None:
    """values(), values_list() (flat and named) and annotations come back as Django gives them."""
    tickets = seeded.objects(Ticket).order_by("id")
    for qs in (
        tickets.values("id", "title"),
        tickets.values_list("id", "title"),
        tickets.values_list("title", flat=True),
        tickets.values_list("id", "title", named=True),
        seeded.objects(Organization).annotate(n=Count("tickets")).order_by("id"),
    ):
        expected = list(qs)
        assert cache_queryset(seeded.cache, qs) == expected
        assert cache_queryset(seeded.cache, qs) == expected
    orgs = cache_queryset(
        seeded.cache, seeded.objects(Organization).annotate(n=Count("tickets")).order_by("id")
    )
    assert [o.n for o in orgs] == [2, 1]  # type: ignore[attr-defined]


def test_uncommitted_writes_are_not_cached(seeded: Seeded) -> None:
    """Inside a transaction that wrote rows, the queryset runs but its answer is not stored."""
    qs = seeded.objects(Ticket).filter(organization=seeded.org7).order_by("id")
    with transaction.atomic(using=seeded.alias):
        seeded.objects(Ticket).filter(pk=seeded.t1.pk).update(title="pending")
        assert [t.title for t in cache_queryset(seeded.cache, qs)] == ["pending", "b"]
        _, n = _queries(seeded, lambda: cache_queryset(seeded.cache, qs))
        assert n == 1
        transaction.set_rollback(True, using=seeded.alias)
    assert [t.title for t in cache_queryset(seeded.cache, qs)] == ["a", "b"]


def test_select_related_objects_are_stored_and_followed(seeded: Seeded) -> None:
    """select_related('organization') comes back with its organizations, with no query, and a write
    to an organization invalidates it; select_related() without names and prefetch_related() raise."""
    qs = seeded.objects(Ticket).select_related("organization").order_by("id")
    assert [t.organization.name for t in cache_queryset(seeded.cache, qs)] == ["seven", "seven", "eight"]
    again, n = _queries(seeded, lambda: cache_queryset(seeded.cache, qs))
    assert n == 0 and [t.organization.name for t in again] == ["seven", "seven", "eight"]  # type: ignore[attr-defined]
    seeded.objects(Organization).filter(pk=seeded.org8.pk).update(name="renamed")
    assert cache_queryset(seeded.cache, qs)[2].organization.name == "renamed"
    every = seeded.objects(Ticket).all()
    every.query.select_related = True  # what select_related() with no names sets (deprecated in 6.1)
    with pytest.raises(InvalidArgumentError, match="name the relations"):
        cache_queryset(seeded.cache, every)
    with pytest.raises(InvalidArgumentError, match="prefetch_related"):
        cache_queryset(seeded.cache, seeded.objects(Ticket).prefetch_related("comments"))


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_rows_round_trip_through_redis() -> None:
    """On a tiered Redis cache, rows rebuilt from the stored values equal the database's."""
    require_redis()
    cache = Cache(REDIS_URL, l1="memory://", namespace=f"djqs{uuid.uuid4().hex[:10]}")
    try:
        org = Organization.objects.create(name="seven")
        Ticket.objects.create(organization=org, title="a", priority=3)
        qs = Ticket.objects.filter(organization=org)
        first = cache_queryset(cache, qs, ttl=60)
        cache.sync.set("probe", 1)  # a second process's view: read back from Redis, not L1
        fresh = Cache(REDIS_URL, namespace=cache.namespace)
        try:
            assert fresh.sync.get_many([]) == {}
            again = cache_queryset(fresh, qs, ttl=60)
        finally:
            unwatch(fresh)
            fresh.sync.close()
        assert again == first and again[0].priority == 3 and again[0].organization_id == org.pk
    finally:
        cache.sync.clear()
        unwatch(cache)
        cache.sync.close()


def test_sync_loaders_run_in_the_calling_thread(seeded: Seeded) -> None:
    """A sync @cached(depends_on=[Ticket]) loader runs in the caller's thread, on the caller's Django
    connection (none is opened, and left open, in a worker thread), and a write to Ticket invalidates it."""
    import threading

    seen: list[int] = []

    @seeded.cache.cached(ttl=60, key="count:{org_id}", depends_on=[Ticket])
    def count(org_id: int) -> int:
        seen.append(threading.get_ident())
        return int(seeded.objects(Ticket).filter(organization_id=org_id).count())

    with CaptureQueriesContext(connections[seeded.alias]) as captured:
        assert count(seeded.org7.pk) == 2
    assert seen == [threading.get_ident()] and len(captured) == 1
    assert count(seeded.org7.pk) == 2 and len(seen) == 1  # cached
    seeded.objects(Ticket).create(organization=seeded.org7, title="new")  # depends_on=[Ticket]: invalidated
    assert count(seeded.org7.pk) == 3 and len(seen) == 2


@pytest.mark.django_db(transaction=True)
async def test_acache_queryset_in_async_code() -> None:
    """acache_queryset caches from async code and is invalidated by an async aupdate()."""
    from perfkit.django.querysets import acache_queryset

    cache = Cache("memory://", namespace=f"djqa{uuid.uuid4().hex[:10]}")
    try:
        org = await Organization.objects.acreate(name="async")
        await Ticket.objects.acreate(organization=org, title="a")
        qs = Ticket.objects.filter(organization=org)
        assert [t.title for t in await acache_queryset(cache, qs, ttl=60)] == ["a"]
        assert cache.stats().hits == 0
        assert [t.title for t in await acache_queryset(cache, qs, ttl=60)] == ["a"]
        assert cache.stats().hits == 1
        await Ticket.objects.filter(organization=org).aupdate(title="b")
        assert [t.title for t in await acache_queryset(cache, qs, ttl=60)] == ["b"]
    finally:
        unwatch(cache)
        await cache.close()
