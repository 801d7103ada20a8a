"""The Django ASGI project tests/django/test_realtime_asgi.py serves with uvicorn: Django's HTTP (the
views of tests/django/realtime_urls.py, sessions and auth) with the hub's WebSocket at /ws and SSE at
/events, authenticated by the Django session (`session_user`). Environment:

    PERFKIT_TEST_RT_DB   the SQLite file (tables made and users alice, bob (password "pw") added on start)
    RT_URL               the hub's broker URL (the real Redis, a prefix of the test's own)
    RT_ROUTER            "perfkit" (perfkit.django.realtime.RealtimeRouter) or "channels"
                         (Channels' ProtocolTypeRouter and URLRouter)
    RT_MONITOR           "1": perfkit's monitor on (token "test-token"; /perf/health/ready reports the
                         hub, which the router registered); unset: off
"""

from __future__ import annotations

import os

from django.conf import settings

from tests.django.project import settings as project

settings.configure(**{
    **{k: v for k, v in vars(project).items() if k.isupper()},
    "DATABASES": {
        "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["PERFKIT_TEST_RT_DB"]}
    },
    "MIDDLEWARE": ["django.contrib.sessions.middleware.SessionMiddleware",
                   "django.contrib.auth.middleware.AuthenticationMiddleware"],
    "ROOT_URLCONF": "tests.django.realtime_urls",
    "PERFKIT": {"monitor": {"token": "test-token"}} if os.environ.get("RT_MONITOR") else {"monitor": False},
})  # fmt: skip

from django.core.asgi import get_asgi_application  # noqa: E402  (after the settings)
from django.core.management import call_command  # noqa: E402

django_app = get_asgi_application()
call_command("migrate", run_syncdb=True, verbosity=0)

from django.contrib.auth.models import User  # noqa: E402  (after setup)

from perfkit.django.realtime import RealtimeRouter, session_user  # noqa: E402
from tests.django.realtime_urls import hub, may_see  # noqa: E402
from tests.django.tickets.models import Organization  # noqa: E402

Organization.objects.create(name="acme")
for name in ("alice", "bob"):
    User.objects.create_user(name, password="pw")

ws = hub.websocket(auth=session_user, can_subscribe=may_see)
sse = hub.sse(auth=session_user, can_subscribe=may_see)

if os.environ.get("RT_ROUTER", "perfkit") == "channels":
    from channels.routing import ProtocolTypeRouter, URLRouter
    from django.urls import path, re_path

    application = ProtocolTypeRouter({
        "http": URLRouter([path("events", sse), re_path(r"", django_app)]),
        "websocket": URLRouter([path("ws", ws)]),
    })  # fmt: skip
else:
    application = RealtimeRouter(django_app, {"/ws": ws, "/events": sse})
