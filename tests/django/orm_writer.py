"""A second process writing through Django: `python -m tests.django.orm_writer DB REDIS NAMESPACE PK`.

It runs its own Django (the test PostgreSQL database, perfkit.django installed) and a perfkit cache
on the shared Redis without an L1; its `QuerySet.update()` must evict the first process's L1 copy.
"""

from __future__ import annotations

import sys

from django.conf import settings

import django


def main(db_name: str, redis_url: str, namespace: str, pk: int) -> None:
    from tests.django.project import settings as project

    options = {k: v for k, v in vars(project).items() if k.isupper()}
    pg = dict(options["DATABASES"]["pg"], NAME=db_name)
    settings.configure(**{**options, "DATABASES": {"default": pg}})
    django.setup()
    from perfkit import Cache
    from perfkit.django import watch
    from tests.django.tickets.models import Ticket

    cache = Cache(redis_url, namespace=namespace)
    watch(cache)
    Ticket.objects.filter(pk=pk).update(title="from elsewhere")
    cache.sync.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
