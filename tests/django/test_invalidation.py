"""Django ORM writes invalidate what depends on them, after commit only, on every write path."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.db import connections, transaction
from django.test.utils import CaptureQueriesContext

from perfkit.django import register, rows
from tests.django.orm_fixtures import DATABASES, Seeded, make_seeded
from tests.django.tickets.models import Organization, Tag, Ticket, TicketAttachment, TicketComment

ORG = "{org}"


@pytest.fixture(params=DATABASES)
def seeded(request: pytest.FixtureRequest) -> Iterator[Seeded]:
    yield from make_seeded(request)


def _update_then_fail(seeded: Seeded, pk: int) -> None:
    with transaction.atomic(using=seeded.alias):
        seeded.objects(Ticket).filter(pk=pk).update(title="rolled back")
        raise RuntimeError("roll back")


def test_save_invalidates_table_and_row_dependents(seeded: Seeded) -> None:
    """A save invalidates `depends_on=[Ticket]` and its own organization's rows, not another's."""
    seeded.put("all", [Ticket])
    seeded.put("label", ["tickets.Ticket"])
    seeded.put("org7", [rows(Ticket, organization_id=ORG)], org=seeded.org7.pk)
    seeded.put("org8", [rows(Ticket, organization=ORG)], org=seeded.org8.pk)
    t1 = seeded.objects(Ticket).get(pk=seeded.t1.pk)
    t1.title = "renamed"
    t1.save()
    assert not seeded.has("all") and not seeded.has("label") and not seeded.has("org7")
    assert seeded.has("org8")


def test_moving_a_row_with_save_reaches_old_and_new_values_without_a_read(seeded: Seeded) -> None:
    """save() of a loaded instance knows its old organization from the load: one query, both orgs."""
    seeded.put("org7", [rows(Ticket, organization_id=ORG)], org=seeded.org7.pk)
    seeded.put("org8", [rows(Ticket, organization_id=ORG)], org=seeded.org8.pk)
    t1 = seeded.objects(Ticket).get(pk=seeded.t1.pk)
    t1.organization = seeded.org8
    with CaptureQueriesContext(connections[seeded.alias]) as queries:
        t1.save()
    assert len(queries) == 1, [q["sql"] for q in queries]
    assert not seeded.has("org7") and not seeded.has("org8")


def test_saving_a_hand_made_instance_reads_its_old_values(seeded: Seeded) -> None:
    """An instance built with a pk (no load) is read before its update: the old org is invalidated."""
    seeded.put("org7", [rows(Ticket, organization_id=ORG)], org=seeded.org7.pk)
    Ticket(pk=seeded.t1.pk, organization=seeded.org8, title="moved").save(using=seeded.alias)
    assert not seeded.has("org7")


def test_queryset_update_is_row_scoped(seeded: Seeded) -> None:
    """QuerySet.update() (no signals) invalidates the filtered rows' organization only."""
    seeded.put("org7", [rows(Ticket, organization_id=ORG)], org=seeded.org7.pk)
    seeded.put("org8", [rows(Ticket, organization_id=ORG)], org=seeded.org8.pk)
    seeded.objects(Ticket).filter(organization=seeded.org8).update(status="closed")
    assert seeded.has("org7") and not seeded.has("org8")


def test_queryset_update_moving_rows_reaches_the_target(seeded: Seeded) -> None:
    """update(organization=...) invalidates the new value as well as the old."""
    seeded.put("org8", [rows(Ticket, organization_id=ORG)], org=seeded.org8.pk)
    seeded.objects(Ticket).filter(pk=seeded.t1.pk).update(organization=seeded.org8)
    assert not seeded.has("org8")


def test_update_with_an_expression_on_a_scope_column_is_table_wide(seeded: Seeded) -> None:
    """An assigned expression (F() + 1) cannot be known: every row-scoped dependent goes."""
    from django.db.models import F

    seeded.put("org8", [rows(Ticket, organization_id=ORG)], org=seeded.org8.pk)
    seeded.objects(Ticket).filter(pk=seeded.t1.pk).update(organization_id=F("organization_id") + 1)
    assert not seeded.has("org8")


def test_bulk_update(seeded: Seeded) -> None:
    """bulk_update() invalidates the rows' old and new organizations, and not unrelated ones."""
    seeded.put("org7", [rows(Ticket, organization_id=ORG)], org=seeded.org7.pk)
    seeded.put("org8", [rows(Ticket, organization_id=ORG)], org=seeded.org8.pk)
    t3 = seeded.objects(Ticket).get(pk=seeded.t3.pk)
    t3.title = "bulk"
    seeded.objects(Ticket).bulk_update([t3], ["title"])
    assert seeded.has("org7") and not seeded.has("org8")
    seeded.put("org8", [rows(Ticket, organization_id=ORG)], org=seeded.org8.pk)
    t1 = seeded.objects(Ticket).get(pk=seeded.t1.pk)
    t1.organization_id = seeded.org8.pk
    seeded.objects(Ticket).bulk_update([t1], ["organization"])
    assert not seeded.has("org7") and not seeded.has("org8")


def test_bulk_create_uses_the_returned_ids(seeded: Seeded) -> None:
    """bulk_create() invalidates its rows' organization; the ids come back, so pk-scoped values of
    other rows are kept (no "rows unknown" invalidation)."""
    seeded.put("org7", [rows(Ticket, organization_id=ORG)], org=seeded.org7.pk)
    seeded.put("other", [rows(Ticket, pk=999999)])
    made = seeded.objects(Ticket).bulk_create(
        [Ticket(organization=seeded.org7, title="x"), Ticket(organization=seeded.org7, title="y")]
    )
    assert all(t.pk for t in made)
    assert not seeded.has("org7")
    assert seeded.has("other")


def test_bulk_create_invalidates_a_cached_miss_of_the_new_id(seeded: Seeded) -> None:
    """A value cached for a ticket id that did not exist yet goes when that row is inserted."""
    nxt = seeded.t3.pk + 1
    seeded.put("missing", [rows(Ticket, id="{tid}")], tid=nxt)
    seeded.objects(Ticket).bulk_create([Ticket(pk=nxt, organization=seeded.org8, title="z")])
    assert not seeded.has("missing")


def test_queryset_delete_and_cascades(seeded: Seeded) -> None:
    """QuerySet.delete() invalidates the deleted rows' dependents and the cascaded comments'."""
    seeded.put("org7", [rows(Ticket, organization_id=ORG)], org=seeded.org7.pk)
    seeded.put("org8", [rows(Ticket, organization_id=ORG)], org=seeded.org8.pk)
    seeded.put("comments", [TicketComment])
    seeded.objects(Ticket).filter(pk=seeded.t1.pk).delete()
    assert not seeded.has("org7") and seeded.has("org8") and not seeded.has("comments")


def test_model_delete(seeded: Seeded) -> None:
    """Model.delete() invalidates the row's organization."""
    seeded.put("org8", [rows(Ticket, organization_id=ORG)], org=seeded.org8.pk)
    seeded.objects(Ticket).get(pk=seeded.t3.pk).delete()
    assert not seeded.has("org8")


def test_m2m_changes_reach_both_ends(seeded: Seeded) -> None:
    """tags.add/remove/clear invalidate the through table and both models' rows."""
    for step in ("add", "remove", "set", "clear"):
        seeded.put("ticket", [rows(Ticket, pk=seeded.t1.pk)])
        seeded.put("tags", [Tag])
        seeded.put("through", [Ticket.tags.through])
        t1 = seeded.objects(Ticket).get(pk=seeded.t1.pk)
        if step == "set":
            t1.tags.set([])
            t1.tags.add(seeded.tag)
        elif step == "clear":
            t1.tags.clear()
        else:
            getattr(t1.tags, step)(seeded.tag)
        assert not seeded.has("ticket") and not seeded.has("tags") and not seeded.has("through"), step


def test_nothing_before_commit_nothing_on_rollback(seeded: Seeded) -> None:
    """Inside a transaction nothing is invalidated; a rollback invalidates nothing at all."""
    seeded.put("all", [Ticket])
    with transaction.atomic(using=seeded.alias):
        seeded.objects(Ticket).filter(pk=seeded.t1.pk).update(title="in txn")
        assert seeded.has("all")
    assert not seeded.has("all")
    seeded.put("all", [Ticket])
    with pytest.raises(RuntimeError):
        _update_then_fail(seeded, seeded.t1.pk)
    assert seeded.has("all")


def test_savepoints(seeded: Seeded) -> None:
    """A rolled-back savepoint drops its own writes' invalidations; the outer ones still apply."""
    seeded.put("org7", [rows(Ticket, organization_id=ORG)], org=seeded.org7.pk)
    seeded.put("org8", [rows(Ticket, organization_id=ORG)], org=seeded.org8.pk)
    with transaction.atomic(using=seeded.alias):
        seeded.objects(Ticket).filter(pk=seeded.t3.pk).update(title="kept")
        with pytest.raises(RuntimeError):
            _update_then_fail(seeded, seeded.t1.pk)
        with transaction.atomic(using=seeded.alias):  # released: passed to the outer transaction
            seeded.objects(Organization).filter(pk=seeded.org7.pk).update(name="x")
    assert seeded.has("org7") and not seeded.has("org8")


def test_relationship_map_reaches_parent_rows(seeded: Seeded) -> None:
    """A registered related model's write invalidates its parent ticket's row and organization."""
    register(Ticket, related=[TicketComment, TicketAttachment], strategy="immediate")
    seeded.put("t1", [rows(Ticket, pk=seeded.t1.pk)])
    seeded.put("org7", [rows(Ticket, organization_id=ORG)], org=seeded.org7.pk)
    seeded.put("org8", [rows(Ticket, organization_id=ORG)], org=seeded.org8.pk)
    seeded.objects(TicketComment).create(ticket=seeded.t1, body="second")
    assert not seeded.has("t1") and not seeded.has("org7") and seeded.has("org8")
    seeded.put("org7", [rows(Ticket, organization_id=ORG)], org=seeded.org7.pk)
    seeded.objects(TicketComment).filter(ticket=seeded.t1).update(body="edited")  # the bulk path too
    assert not seeded.has("org7") and seeded.has("org8")


def test_bad_declarations_are_refused() -> None:
    """rows() with two lookups or an unknown field, and an unknown strategy, raise naming the problem."""
    from perfkit.errors import ConfigurationError, InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match="one lookup"):
        rows(Ticket, organization_id=1, status="open")
    with pytest.raises(InvalidArgumentError, match="no column field 'orgnization'"):
        rows(Ticket, orgnization=1)
    with pytest.raises(ConfigurationError, match="strategy"):
        register(Ticket, strategy="eventually")
    with pytest.raises(InvalidArgumentError, match="no model"):
        rows("Tikcet", pk=1).__perfkit_dependency__(None)({})
