"""Fixtures of the ORM invalidation tests: a seeded database (SQLite, the real PostgreSQL) and a cache."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from perfkit import Cache
from perfkit.cache.depends import compile_dependencies
from tests.conftest import require_postgres

DATABASES = [
    pytest.param("default", marks=[pytest.mark.sqlite, pytest.mark.django_db(transaction=True)], id="sqlite"),
    pytest.param(
        "pg",
        marks=[pytest.mark.postgres, pytest.mark.django_db(databases=["pg"], transaction=True)],
        id="postgres",
    ),
]


class Seeded:
    """The database alias, its seeded rows and a perfkit cache of the test's own."""

    def __init__(self, alias: str, cache: Cache) -> None:
        from tests.django.tickets.models import Organization, Tag, Ticket, TicketComment

        self.alias, self.cache = alias, cache
        self.org7 = Organization.objects.using(alias).create(name="seven")
        self.org8 = Organization.objects.using(alias).create(name="eight")
        objs = Ticket.objects.using(alias)
        self.t1 = objs.create(organization=self.org7, title="a")
        self.t2 = objs.create(organization=self.org7, title="b")
        self.t3 = objs.create(organization=self.org8, title="c")
        self.comment = TicketComment.objects.using(alias).create(ticket=self.t1, body="first")
        self.tag = Tag.objects.using(alias).create(name="urgent")

    def objects(self, model: Any) -> Any:
        return model.objects.using(self.alias)

    def put(self, key: str, deps: list[Any], **args: Any) -> None:
        """Cache a value under `key` carrying the tags of `deps` (filled from `args`)."""
        self.cache.sync.set(key, "cached", ttl=300, tags=compile_dependencies(deps, self.cache)(args))

    def has(self, key: str) -> bool:
        return bool(self.cache.sync.exists(key))


def make_seeded(request: pytest.FixtureRequest) -> Iterator[Seeded]:
    """The body of each test module's `seeded` fixture (parametrized over DATABASES)."""
    if request.param == "pg":
        require_postgres()
    cache = Cache("memory://", namespace=f"djorm{uuid.uuid4().hex[:10]}")
    yield Seeded(request.param, cache)
    from perfkit.django.invalidation import flush, unwatch

    flush()
    unwatch(cache)
    cache.sync.close()
