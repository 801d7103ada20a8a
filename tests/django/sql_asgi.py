"""The ASGI application tests/django/test_sql_asgi.py serves with uvicorn: the test project on a
SQLite file (PERFKIT_TEST_SQL_DB), the request-opening middleware, tests/django/sql_urls.py's views;
the tables are made and four tickets of one organization added on start."""

from __future__ import annotations

import os

from django.conf import settings

from tests.django.project import settings as project

settings.configure(**{
    **{k: v for k, v in vars(project).items() if k.isupper()},
    "DATABASES": {
        "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["PERFKIT_TEST_SQL_DB"]}
    },
    "MIDDLEWARE": ["tests.django.sql_urls.OpenRequest"],
    "ROOT_URLCONF": "tests.django.sql_urls",
    "PERFKIT": {"monitor": False, "db": {"nplusone_threshold": 3}},
})  # fmt: skip

from django.core.asgi import get_asgi_application  # noqa: E402  (after the settings)
from django.core.management import call_command  # noqa: E402

application = get_asgi_application()
call_command("migrate", run_syncdb=True, verbosity=0)

from tests.django.tickets.models import Organization, Ticket  # noqa: E402  (after setup)

_org = Organization.objects.create(name="acme")
Ticket.objects.bulk_create([Ticket(organization=_org, title=f"t{i}") for i in range(4)])
