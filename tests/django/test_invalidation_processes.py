"""Strategies, the stale-set race, other processes, and a cache that is down."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connections

from perfkit import Cache
from perfkit.django import register, rows, watch
from perfkit.django.invalidation import flush, stats, unwatch
from tests.conftest import REDIS_URL, eventually, free_port, require_postgres, require_redis
from tests.django.orm_fixtures import DATABASES, Seeded, make_seeded
from tests.django.tickets.models import Organization, Ticket

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=DATABASES)
def seeded(request: pytest.FixtureRequest) -> Iterator[Seeded]:
    yield from make_seeded(request)


@pytest.fixture
def organization_strategy() -> Iterator[None]:
    yield
    register(Organization, strategy="immediate")


def _gone(seeded: Seeded, key: str) -> bool:
    async def check() -> bool:
        return not seeded.has(key)

    asyncio.run(eventually(check, timeout=5, what=f"{key} invalidated"))
    return True


@pytest.mark.usefixtures("organization_strategy")
def test_delayed_strategy_applies_shortly_after_commit(seeded: Seeded) -> None:
    """`delayed`: not applied in the commit, applied within the delay (0.1 s) after it."""
    register(Organization, strategy="delayed")
    seeded.put("org7", [rows(Organization, pk=seeded.org7.pk)])
    seeded.objects(Organization).filter(pk=seeded.org7.pk).update(name="renamed")
    assert seeded.has("org7")
    assert _gone(seeded, "org7")
    assert stats()["tickets.Organization"]["delayed"]["invalidations"] >= 1


@pytest.mark.usefixtures("organization_strategy")
def test_batch_strategy_waits_for_the_batch(seeded: Seeded) -> None:
    """`batch`: held until the batch interval (1 s) or flush()."""
    register(Organization, strategy="batch")
    seeded.put("org8", [rows(Organization, pk=seeded.org8.pk)])
    seeded.objects(Organization).filter(pk=seeded.org8.pk).update(name="renamed")
    assert seeded.has("org8")
    flush()
    assert not seeded.has("org8")


def test_stale_set_race_with_a_real_commit(seeded: Seeded) -> None:
    """A loader that read before a commit does not store its result after that commit's invalidation."""
    read_done, writer_done = threading.Event(), threading.Event()
    alias = seeded.alias

    @seeded.cache.cached(
        ttl=300, key="org:{org_id}:titles", depends_on=[rows(Ticket, organization="{org_id}")]
    )
    def titles(org_id: int) -> list[str]:
        try:
            qs = Ticket.objects.using(alias).filter(organization_id=org_id).order_by("id")
            out = list(qs.values_list("title", flat=True))
        finally:
            connections[alias].close()  # the loader runs in a worker thread: leave no connection open
        read_done.set()
        writer_done.wait(5)  # the writer commits while we hold pre-commit data
        return out

    result: dict[str, list[str]] = {}
    reader = threading.Thread(target=lambda: result.update(v=titles(seeded.org7.pk)))
    reader.start()
    assert read_done.wait(5)
    seeded.objects(Ticket).filter(pk=seeded.t1.pk).update(title="renamed")
    writer_done.set()
    reader.join(5)
    assert result["v"] == ["a", "b"]  # the reader's own answer, computed before the commit
    assert not seeded.cache.sync.exists(titles.key(seeded.org7.pk))  # but it was not stored
    assert titles(seeded.org7.pk) == ["renamed", "b"]


@pytest.mark.django_db(transaction=True)
def test_a_cache_that_is_down_never_fails_the_write() -> None:
    """With the watched cache's Redis unreachable, writes commit and nothing raises."""
    cache = Cache(f"redis://127.0.0.1:{free_port()}/0", namespace="down", timeout=0.2)
    watch(cache)
    try:
        org = Organization.objects.create(name="x")
        Organization.objects.filter(pk=org.pk).update(name="y")
        assert Organization.objects.get(pk=org.pk).name == "y"
    finally:
        unwatch(cache)
        cache.sync.close()


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.django_db(databases=["pg"], transaction=True)
def test_a_write_in_another_process_evicts_this_process_l1() -> None:
    """A second process's QuerySet.update() removes the value from Redis and, by coherence, from our L1."""
    require_redis()
    require_postgres()
    namespace = f"djx{uuid.uuid4().hex[:10]}"
    cache = Cache(REDIS_URL, l1="memory://", namespace=namespace)
    org = Organization.objects.using("pg").create(name="seven")
    ticket = Ticket.objects.using("pg").create(organization=org, title="before")

    @cache.cached(ttl=300, key="org:{org_id}", depends_on=[rows(Ticket, organization_id="{org_id}")])
    def titles(org_id: int) -> list[str]:
        try:
            return list(
                Ticket.objects.using("pg").filter(organization_id=org_id).values_list("title", flat=True)
            )
        finally:
            connections["pg"].close()

    try:
        assert titles(org.pk) == ["before"]

        async def from_l1() -> bool:  # served by our L1 (counted as an L1 hit), not by Redis
            hits = cache.stats().tiers["l1"].hits
            got = await asyncio.to_thread(titles, org.pk)  # Django refuses queries inside a loop
            return got == ["before"] and cache.stats().tiers["l1"].hits > hits

        asyncio.run(eventually(from_l1, timeout=5, what="the value served from our L1"))
        env = dict(os.environ, PYTHONPATH=f"{ROOT / 'src'}{os.pathsep}{ROOT}")
        db_name = connections["pg"].settings_dict["NAME"]
        subprocess.run(
            [sys.executable, "-m", "tests.django.orm_writer", db_name, REDIS_URL, namespace, str(ticket.pk)],
            cwd=ROOT, env=env, check=True, timeout=60, capture_output=True,
        )  # fmt: skip

        async def evicted() -> bool:  # an L1 copy would answer "before" until its TTL (300 s)
            return await asyncio.to_thread(titles, org.pk) == ["from elsewhere"]

        asyncio.run(eventually(evicted, timeout=5, what="our L1 copy evicted"))
    finally:
        cache.sync.clear()
        unwatch(cache)
        cache.sync.close()


def test_manual_transactions_invalidate_after_the_statement_and_again(seeded: Seeded) -> None:
    """With set_autocommit(False) (no on_commit), a write invalidates at once and again shortly after
    (a reader who refilled from pre-commit data in between is corrected)."""
    from django.db import transaction

    seeded.put("org7", [rows(Ticket, organization_id="{org}")], org=seeded.org7.pk)
    transaction.set_autocommit(False, using=seeded.alias)
    try:
        seeded.objects(Ticket).filter(pk=seeded.t1.pk).update(title="manual")
        assert not seeded.has("org7")
        seeded.put("org7", [rows(Ticket, organization_id="{org}")], org=seeded.org7.pk)  # a refill
        transaction.commit(using=seeded.alias)
    finally:
        transaction.set_autocommit(True, using=seeded.alias)
    assert _gone(seeded, "org7")
