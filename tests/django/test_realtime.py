"""perfkit.django.realtime in the test process: `publish_on_commit` on real transactions (SQLite and the
real PostgreSQL, a hub on the real Redis), `session_user` on real sessions, `RealtimeRouter`'s routing,
Django writes followed (`follow_invalidations`)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.db import transaction

from perfkit.django.realtime import RealtimeRouter, follow_invalidations, publish_on_commit, session_user
from perfkit.errors import ConfigurationError, InvalidArgumentError, SerializationError
from perfkit.metrics import Collector
from perfkit.realtime import Hub
from tests.conftest import REDIS_URL, free_port, require_redis
from tests.django.orm_fixtures import DATABASES as DATABASES_SEEDED
from tests.django.orm_fixtures import Seeded, make_seeded

DATABASES = ["default", "pg"]


@pytest.fixture
def hub() -> Iterator[Hub]:
    """A hub on the real Redis under a key prefix of this test's own (deleted afterwards), used from
    sync code as a Django view would (`hub.sync`)."""
    require_redis()
    prefix = f"t-rtdj-{uuid.uuid4().hex[:10]}:"
    made = Hub(f"{REDIS_URL}?prefix={prefix}", collector=Collector(), batch_window=0)
    yield made
    made.sync.close()  # its Redis connection (the hub itself never ran on a loop here)
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def history(hub: Hub, channel: str) -> list[Any]:
    """What the channel's history holds, read by another hub on the same Redis (another process's view)."""

    async def read() -> list[Any]:
        reader = Hub(hub.url, collector=Collector())
        try:
            return await reader.history(channel)
        finally:
            await reader.close()

    return asyncio.run(read())


@pytest.mark.django_db(databases=DATABASES, transaction=True)
@pytest.mark.parametrize("using", DATABASES)
def test_published_after_commit_only(hub: Hub, using: str) -> None:
    """Inside `atomic(using)` nothing is published until COMMIT, then everything, in call order;
    outside a transaction (autocommit) it is published at once."""
    from tests.django.tickets.models import Organization

    with transaction.atomic(using=using):
        Organization.objects.using(using).create(name="acme")
        publish_on_commit(hub, "org:1", {"n": 1}, using=using)
        publish_on_commit(hub, "org:1", {"n": 2}, using=using)
        assert history(hub, "org:1") == []
    assert history(hub, "org:1") == [{"n": 1}, {"n": 2}]
    publish_on_commit(hub, "org:1", {"n": 3}, using=using)
    assert history(hub, "org:1") == [{"n": 1}, {"n": 2}, {"n": 3}]


@pytest.mark.django_db(databases=DATABASES, transaction=True)
@pytest.mark.parametrize("using", DATABASES)
def test_rollbacks_publish_nothing(hub: Hub, using: str) -> None:
    """A rolled-back transaction publishes nothing; a rolled-back savepoint drops only what was queued
    inside it, the outer transaction's messages are published after its commit."""
    try:
        with transaction.atomic(using=using):
            publish_on_commit(hub, "org:2", "lost", using=using)
            raise RuntimeError("roll back")
    except RuntimeError:
        pass
    with transaction.atomic(using=using):
        publish_on_commit(hub, "org:2", "outer", using=using)
        try:
            with transaction.atomic(using=using):
                publish_on_commit(hub, "org:2", "savepoint", using=using)
                raise RuntimeError("roll the savepoint back")
        except RuntimeError:
            pass
        publish_on_commit(hub, "org:2", "after", using=using)
    assert history(hub, "org:2") == ["outer", "after"]


@pytest.mark.django_db(databases=DATABASES, transaction=True)
def test_bound_to_the_database_named(hub: Hub) -> None:
    """A message for `using="pg"` waits for pg's transaction, not for one on the default database."""
    with transaction.atomic(using="pg"):
        with transaction.atomic(using="default"):
            publish_on_commit(hub, "org:3", "pg", using="pg")
        assert history(hub, "org:3") == []  # default committed; pg has not yet
    assert history(hub, "org:3") == ["pg"]


@pytest.mark.django_db(transaction=True)
def test_bad_input_fails_in_the_caller(hub: Hub) -> None:
    """A bad channel name or data with no JSON form raise at the call; nothing is queued for the commit."""
    with transaction.atomic():
        with pytest.raises(InvalidArgumentError):
            publish_on_commit(hub, "no spaces", 1)
        with pytest.raises(SerializationError):
            publish_on_commit(hub, "org:4", object())
        publish_on_commit(hub, "org:4", "ok")
    assert history(hub, "org:4") == ["ok"]


def _cookie_of(client: Any) -> str:
    from django.conf import settings

    return str(client.cookies[settings.SESSION_COOKIE_NAME].value)


class Conn:
    """What `session_user` reads of a starlette HTTPConnection: its cookies."""

    def __init__(self, cookies: dict[str, str]) -> None:
        self.cookies = cookies


@pytest.mark.django_db(transaction=True)
def test_session_user_resolves_the_logged_in_user(client: Any, settings: Any) -> None:
    """The session cookie of a logged-in user resolves to that user (read in Django's sync thread);
    no cookie, an unknown session, an inactive user, a logged-out session and a password changed since
    the login resolve to None."""
    from django.contrib.auth.models import User

    settings.SESSION_ENGINE = "django.contrib.sessions.backends.db"
    alice = User.objects.create_user("alice", password="pw")

    def resolve(cookies: dict[str, str]) -> Any:
        return asyncio.run(session_user(Conn(cookies)))  # type: ignore[arg-type]

    client.force_login(alice)
    name = settings.SESSION_COOKIE_NAME
    cookie = _cookie_of(client)
    found = resolve({name: cookie})
    assert found is not None and found.pk == alice.pk
    assert resolve({}) is None and resolve({name: "no-such-session"}) is None
    alice.is_active = False
    alice.save()
    assert resolve({name: cookie}) is None
    alice.is_active = True
    alice.save()
    assert resolve({name: cookie}) is not None
    client.logout()
    assert resolve({name: cookie}) is None
    client.force_login(alice)
    cookie = _cookie_of(client)
    alice.set_password("changed")
    alice.save()  # the session's auth hash no longer matches: Django logs the session out
    assert resolve({name: cookie}) is None


def test_router_checks_its_routes() -> None:
    """Routes are checked at construction: a path without a leading slash or an endpoint that is not
    callable is a ConfigurationError naming `routes`."""

    async def django_app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("not reached")

    for bad in ({"ws": django_app}, {"/ws": "endpoint"}):
        with pytest.raises(ConfigurationError) as err:
            RealtimeRouter(django_app, bad)  # type: ignore[arg-type]
        assert err.value.setting == "routes"


async def test_router_dispatches_by_path_and_answers_lifespan() -> None:
    """HTTP and WebSocket scopes on a route go to its endpoint, other HTTP to Django, other WebSockets
    are refused (Django cannot take them); lifespan is answered and shutdown closes the hub."""
    seen: list[str] = []

    async def django_app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(f"django {scope['path']}")

    hub = Hub("memory://", collector=Collector())
    sse = hub.sse(auth=None, can_subscribe=lambda user, channel: True)
    closed: list[Any] = []
    hub.close = lambda: _record(closed)  # type: ignore[method-assign]

    async def endpoint(scope: Any, receive: Any, send: Any) -> None:
        seen.append(f"endpoint {scope['type']}")

    router = RealtimeRouter(django_app, {"/ws": endpoint, "/events": sse})
    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def connect() -> Any:
        return {"type": "websocket.connect"}

    await router({"type": "websocket", "path": "/ws"}, connect, send)
    await router({"type": "http", "path": "/ws"}, connect, send)
    await router({"type": "http", "path": "/tickets/"}, connect, send)
    await router({"type": "websocket", "path": "/other"}, connect, send)
    assert seen == ["endpoint websocket", "endpoint http", "django /tickets/"]
    assert sent == [{"type": "websocket.close", "code": 1000}]
    lifespan = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

    async def receive() -> Any:
        return next(lifespan)

    sent.clear()
    await router({"type": "lifespan"}, receive, send)
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert closed == [True] and router.hubs == [hub]


async def _record(closed: list[Any]) -> None:
    closed.append(True)


@pytest.mark.django_db(transaction=True)
def test_redis_down_never_breaks_the_commit(caplog: pytest.LogCaptureFixture) -> None:
    """With the hub's Redis unreachable the transaction still commits and the view goes on; the lost
    publish is logged with its channel."""
    from tests.django.tickets.models import Organization

    down = Hub(f"redis://127.0.0.1:{free_port()}/0", collector=Collector())
    try:
        with transaction.atomic():
            Organization.objects.create(name="kept")
            publish_on_commit(down, "org:9", {"n": 1})
    finally:
        down.sync.close()
    assert Organization.objects.filter(name="kept").exists()
    assert "publish on org:9 failed" in caplog.text


async def test_async_code_outside_a_transaction_publishes_at_once() -> None:
    """From async code (an async view: autocommit, Django runs the callback at once) the message goes
    through the hub's outbox on the running loop, without blocking it."""
    hub = Hub("memory://", collector=Collector())
    try:
        publish_on_commit(hub, "org:5", "from an async view")
        await hub.drain()
        assert await hub.history("org:5") == ["from an async view"]
    finally:
        await hub.close()


@pytest.fixture(params=DATABASES_SEEDED)
def seeded(request: pytest.FixtureRequest) -> Iterator[Seeded]:
    yield from make_seeded(request)


def test_django_writes_published_after_commit(seeded: Seeded, hub: Hub) -> None:
    """`follow_invalidations(hub)` publishes a committed Ticket move on model:tickets.Ticket with its
    key and both organizations, once the cached dependents are gone; nothing before the commit, nothing
    for a rolled-back write, nothing for a model left out by `models=`."""
    from perfkit.django import rows
    from tests.django.tickets.models import Organization, Ticket

    channel = "model:tickets.Ticket"
    seeded.put("org7", [rows(Ticket, organization_id="{org}")], org=seeded.org7.pk)
    stop = follow_invalidations(hub, models=[Ticket])
    try:
        with transaction.atomic(using=seeded.alias):
            ticket = seeded.objects(Ticket).get(pk=seeded.t1.pk)
            ticket.organization = seeded.org8
            ticket.save()
            assert history(hub, channel) == [] and seeded.has("org7")
        [message] = history(hub, channel)
        assert not seeded.has("org7")
        table = message["rows"]["tickets_ticket"]
        assert message["model"] == "tickets.Ticket" and message["unknown"] == []
        assert table["id"] == [str(ticket.pk)]
        assert table["organization_id"] == sorted([str(seeded.org7.pk), str(seeded.org8.pk)])
        try:
            with transaction.atomic(using=seeded.alias):
                seeded.objects(Ticket).filter(pk=seeded.t2.pk).update(title="rolled back")
                raise RuntimeError("roll back")
        except RuntimeError:
            pass
        seeded.objects(Organization).filter(pk=seeded.org7.pk).update(name="renamed")
        assert len(history(hub, channel)) == 1
        assert history(hub, "model:tickets.Organization") == []
    finally:
        stop()
