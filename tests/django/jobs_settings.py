"""Settings of the processes the job tests start: `python -m django perfkit_worker --settings ...`, and
the uvicorn and gunicorn servers of tests/django/jobs_asgi.py and jobs_wsgi.py.

The test project's, with the jobs app installed, the test process's PostgreSQL test database as
`default` (PERFKIT_TEST_DJ_DB) and the queue the test made (PERFKIT_TEST_DJ_JOBS; unset: no queue).
"""

from __future__ import annotations

import os

from tests.django.project.settings import *  # noqa: F403 - the shared test project, extended
from tests.django.project.settings import DATABASES as _BASE
from tests.django.project.settings import INSTALLED_APPS as _APPS

INSTALLED_APPS = [*_APPS, "tests.django.jobs_app"]
ROOT_URLCONF = "tests.django.jobs_urls"  # the servers of test_jobs_servers.py serve these views
_AGE = os.environ.get("PERFKIT_TEST_DJ_CONN_MAX_AGE", "0")
DATABASES = {
    "default": {
        **_BASE["pg"],
        "NAME": os.environ.get("PERFKIT_TEST_DJ_DB", "test"),
        "CONN_MAX_AGE": None if _AGE == "none" else int(_AGE),
    }
}
PERFKIT = {"monitor": False}
if os.environ.get("PERFKIT_TEST_DJ_JOBS"):
    PERFKIT["jobs"] = os.environ["PERFKIT_TEST_DJ_JOBS"]
