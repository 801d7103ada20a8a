"""Django N+1 detection: lazy foreign-key, reverse-relation and many-to-many loads per row, with the
fix named in Django terms, and no finding when select_related/prefetch_related load them up front."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
from django.db.models import QuerySet

from perfkit.db import track
from perfkit.metrics import Collector
from tests.django import sql_helpers
from tests.django.sql_helpers import Configure, databases
from tests.django.tickets.models import Organization, Tag, Ticket, TicketComment, TicketSummary

alias = sql_helpers.alias  # the fixtures, used by name
configure = sql_helpers.configure


def _data(alias: str, n: int = 4) -> None:
    tags = [Tag.objects.using(alias).create(name=f"tag{i}") for i in range(2)]
    for i in range(n):
        org = Organization.objects.using(alias).create(name=f"org{i}")
        ticket = Ticket.objects.using(alias).create(organization=org, title=f"t{i}")
        TicketComment.objects.using(alias).create(ticket=ticket, body="hello")
        ticket.tags.add(*tags)


def _found(collector: Collector) -> dict[str, dict[str, Any]]:
    return {f["relationship"]: f for f in collector.findings("n_plus_one")}


@databases()
def test_lazy_foreign_key_per_row_names_select_related(alias: str, configure: Configure) -> None:
    """`ticket.organization` loaded per row is one finding with the fix select_related("organization"),
    counted in db_nplusone_total{relationship,route}."""
    collector = configure(nplusone_threshold=3)
    _data(alias)
    with track("/tickets/"):
        names = [t.organization.name for t in Ticket.objects.using(alias).all()]
    assert len(names) == 4
    found = _found(collector)
    assert list(found) == ["Ticket.organization"]
    assert found["Ticket.organization"]["fix"] == 'select_related("organization")'
    assert found["Ticket.organization"]["route"] == "/tickets/"
    assert 'add .select_related("organization") to the queryset' in found["Ticket.organization"]["message"]
    total = collector.counter("db_nplusone_total", ("relationship", "route"))
    assert total.value(("Ticket.organization", "/tickets/")) == 1


@databases()
def test_lazy_reverse_relation_per_row_names_prefetch_related(alias: str, configure: Configure) -> None:
    """`ticket.comments.all()` evaluated per row is a finding with prefetch_related("comments")."""
    collector = configure(nplusone_threshold=3)
    _data(alias)
    with track("/tickets/"):
        bodies = [[c.body for c in t.comments.all()] for t in Ticket.objects.using(alias).all()]
    assert bodies == [["hello"]] * 4
    found = _found(collector)
    assert list(found) == ["Ticket.comments"]
    assert found["Ticket.comments"]["fix"] == 'prefetch_related("comments")'


@databases()
def test_many_to_many_both_ways_name_prefetch_related(alias: str, configure: Configure) -> None:
    """`ticket.tags.all()` and `tag.tickets.all()` per row name prefetch_related("tags") and
    prefetch_related("tickets")."""
    collector = configure(nplusone_threshold=2)
    _data(alias)
    with track():
        for t in Ticket.objects.using(alias).all():
            list(t.tags.all())
        for tag in Tag.objects.using(alias).all():
            list(tag.tickets.all())
    found = _found(collector)
    assert found["Ticket.tags"]["fix"] == 'prefetch_related("tags")'
    assert found["Tag.tickets"]["fix"] == 'prefetch_related("tickets")'


@databases()
def test_no_finding_when_relations_are_loaded_up_front(alias: str, configure: Configure) -> None:
    """select_related and prefetch_related: the same loops load nothing lazily and record nothing."""
    collector = configure(nplusone_threshold=2)
    _data(alias)
    with track() as stats:
        rows = Ticket.objects.using(alias).select_related("organization").prefetch_related("comments", "tags")
        for t in rows:
            assert t.organization.name.startswith("org")
            assert [c.body for c in t.comments.all()] == ["hello"]
            assert len(t.tags.all()) == 2
    assert stats.db_count == 3  # the tickets with their organizations, the comments, the tags
    assert stats.lazy_loads == {}
    assert collector.findings("n_plus_one") == []


@databases()
def test_writes_through_a_related_manager_are_not_loads(alias: str, configure: Configure) -> None:
    """`ticket.comments.create(...)` per row runs INSERTs, not lazy loads: no finding."""
    collector = configure(nplusone_threshold=2)
    _data(alias)
    with track() as stats:
        for t in Ticket.objects.using(alias).select_related("organization"):
            t.comments.create(body="more")
    assert stats.lazy_loads == {}
    assert collector.findings("n_plus_one") == []


@databases()
def test_below_the_threshold_or_outside_a_request_nothing_is_reported(
    alias: str, configure: Configure
) -> None:
    """Two lazy loads with a threshold of 3, or any number outside a request, record nothing."""
    collector = configure(nplusone_threshold=3)
    _data(alias)
    with track() as stats:
        for t in Ticket.objects.using(alias).all()[:2]:
            assert t.organization.name
    assert stats.lazy_loads == {("Ticket", "organization"): 2}
    for t in Ticket.objects.using(alias).all():
        assert t.organization.name
    assert collector.findings("n_plus_one") == []


@pytest.mark.django_db
def test_a_lazily_loaded_queryset_still_pickles_as_a_plain_one(configure: Configure) -> None:
    """The queryset a related manager hands out pickles and unpickles as Django's own QuerySet."""
    configure()
    _data("default", 1)
    ticket = Ticket.objects.get()
    restored = pickle.loads(pickle.dumps(ticket.comments.all()))  # noqa: S301  (made here)
    assert type(restored) is QuerySet
    assert [c.body for c in restored] == ["hello"]


@databases()
def test_one_to_one_both_ways_name_select_related(alias: str, configure: Configure) -> None:
    """`summary.ticket` and `ticket.summary` per row name select_related("ticket") and
    select_related("summary"); with select_related both load nothing lazily."""
    collector = configure(nplusone_threshold=3)
    _data(alias)
    for ticket in Ticket.objects.using(alias).all():
        TicketSummary.objects.using(alias).create(ticket=ticket, text=ticket.title)
    with track():
        assert all(s.ticket.title == s.text for s in TicketSummary.objects.using(alias).all())
        assert all(t.summary.text == t.title for t in Ticket.objects.using(alias).all())
    found = _found(collector)
    assert found["TicketSummary.ticket"]["fix"] == 'select_related("ticket")'
    assert found["Ticket.summary"]["fix"] == 'select_related("summary")'
    with track() as stats:
        assert all(s.ticket.title for s in TicketSummary.objects.using(alias).select_related("ticket"))
        assert all(t.summary.text for t in Ticket.objects.using(alias).select_related("summary"))
    assert stats.lazy_loads == {} and stats.db_count == 2
