"""The real-time hub in a Django project (`perfkit.realtime`; docs/realtime.md).

    publish_on_commit(hub, channel, data, using=None)   after the transaction of `using` commits
    follow_invalidations(hub)                           model writes -> `model:<app_label.Model>`
    session_user                                        `auth=` for the endpoints: the logged-in user
    RealtimeRouter(django_app, {"/ws": ..., "/events": ...})   the endpoints beside Django's ASGI app
    register_hub(hub)                                   its readiness in /perf/health/ready (the
                                                        router registers its endpoints' hubs itself)

In asgi.py:

    application = RealtimeRouter(get_asgi_application(), {
        "/ws": hub.websocket(auth=session_user, can_subscribe=may_see),
        "/events": hub.sse(auth=session_user, can_subscribe=may_see),
    })

Channels' `ProtocolTypeRouter` works as well: the endpoints are plain ASGI apps (docs/realtime.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from importlib import import_module
from typing import TYPE_CHECKING, Any

from perfkit.errors import ConfigurationError
from perfkit.realtime.protocol import check_channel, encode
from perfkit.web.types import ASGIApp, Receive, Scope, Send

if TYPE_CHECKING:
    from starlette.requests import HTTPConnection

    from perfkit.realtime import Hub

__all__ = [
    "RealtimeRouter", "follow_invalidations", "publish_on_commit", "register_hub", "registered_hubs",
    "session_user",
]  # fmt: skip
logger = logging.getLogger("perfkit.realtime")
_hubs: list[Hub] = []  # the process's hubs whose readiness the Django monitor reports


def register_hub(hub: Hub) -> None:
    """Report `hub` in the project's `/perf/health/ready` (check `realtime`; `realtime:2`, ... for more
    hubs): not ready while its broker cannot be reached. `RealtimeRouter` registers the hubs of its
    endpoints; call this for a hub served otherwise (Channels' `ProtocolTypeRouter`). The check runs
    on perfkit's background loop and asks the hub on its own loop (`Hub.health_anywhere`)."""
    if all(known is not hub for known in _hubs):
        _hubs.append(hub)


def registered_hubs() -> list[Hub]:
    """The hubs `register_hub` was given, in order."""
    return list(_hubs)


def publish_on_commit(hub: Hub, channel: str, data: Any, *, using: str | None = None) -> None:
    """Publish `data` on `channel` once the current transaction of database `using` (default: the
    default database) commits, through `transaction.on_commit`: nothing if it rolls back; inside a
    savepoint (a nested `atomic`) that rolls back, only what was queued in it is dropped. Outside a
    transaction (autocommit) it is published at once, and so from async code (an async view), where
    no `atomic` block can be open (Django's `on_commit` would raise SynchronousOnlyOperation there).
    A bad channel or a value with no JSON form fails here, in the caller, not after the commit; a
    publish that fails later is logged, never raised."""
    from django.db import transaction

    check_channel(channel)
    encode(data)
    if not transaction.get_connection(using).in_atomic_block and _on_event_loop():
        hub.publish_soon(channel, data)
        return
    transaction.on_commit(lambda: hub.publish_soon(channel, data), using=using)


def follow_invalidations(
    hub: Hub, channel: str = "model:{model}", models: Iterable[Any] | None = None
) -> Callable[[], None]:
    """`hub.follow_invalidations` for the project's Django invalidation (perfkit.django.invalidation):
    after each commit that wrote rows of a model, once its cached dependents are invalidated,
    `{"model", "rows", "unknown"}` is published on `channel.format(model=<app_label.Model>)`.
    `models` (classes or "app_label.Model" names) limits it to those models. Returns a function that
    stops it."""
    from perfkit.django.orm_apply import invalidator
    from perfkit.django.orm_deps import model_label, resolve_model

    labels = None if models is None else [model_label(resolve_model(m)) for m in models]
    return hub.follow_invalidations(invalidator, channel, labels)


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


async def session_user(conn: HTTPConnection) -> Any:
    """The authenticated, active user of the Django session the connection's session cookie
    (`SESSION_COOKIE_NAME`) names, or None (no cookie, an unknown or expired session, a logged-out or
    inactive user, a password changed since: Django's own `get_user` checks). Async-safe: the session
    and user are read in Django's sync thread, with stale database connections closed around it."""
    from asgiref.sync import sync_to_async
    from django.conf import settings

    key = conn.cookies.get(settings.SESSION_COOKIE_NAME)
    if not key:
        return None
    return await sync_to_async(_user_of_session, thread_sensitive=True)(key)


def _user_of_session(key: str) -> Any:
    from django.conf import settings
    from django.contrib import auth
    from django.db import close_old_connections
    from django.http import HttpRequest

    close_old_connections()
    try:
        request = HttpRequest()
        request.session = import_module(settings.SESSION_ENGINE).SessionStore(key)
        user = auth.get_user(request)
        return user if user.is_authenticated else None
    finally:
        close_old_connections()


class RealtimeRouter:
    """An ASGI app: requests and WebSockets whose path is one of `routes` go to that endpoint (the
    hub's `websocket()` and `sse()`, or any ASGI app), everything else to `application` (Django's
    ASGI handler). It answers the lifespan protocol itself (Django's handler refuses it) and, at
    shutdown, closes the endpoints' hubs so their clients are told to resume elsewhere (1012)."""

    def __init__(self, application: ASGIApp, routes: Mapping[str, ASGIApp]) -> None:
        for path, endpoint in routes.items():
            if not isinstance(path, str) or not path.startswith("/"):
                raise ConfigurationError("routes", f"{path!r} is not a path such as '/ws'")
            if not callable(endpoint):
                raise ConfigurationError("routes", f"{endpoint!r} (for {path}) is not an ASGI app")
        self.application = application
        self.routes = dict(routes)
        hubs: dict[int, Any] = {}
        for endpoint in self.routes.values():
            hub = getattr(endpoint, "hub", None)
            if callable(getattr(hub, "close", None)):
                hubs[id(hub)] = hub
        self.hubs = list(hubs.values())
        for hub in self.hubs:
            if callable(getattr(hub, "health_anywhere", None)):
                register_hub(hub)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        endpoint = self.routes.get(scope.get("path", ""))
        if endpoint is not None:
            await endpoint(scope, receive, send)
        elif kind == "websocket":  # Django's handler cannot take a WebSocket: refuse the handshake
            await receive()
            await send({"type": "websocket.close", "code": 1000})
        else:
            await self.application(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for hub in self.hubs:
                    try:
                        await hub.close()
                    except Exception:  # one hub's failure must not keep the server from stopping
                        logger.exception("realtime: closing %r at shutdown failed", hub)
                await send({"type": "lifespan.shutdown.complete"})
                return
