"""Who may connect, subscribe and publish: the `Origin` allow-list, the `auth` call at connect, the
per-channel policies. Each policy may be a plain function or a coroutine function."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import HTTPConnection

from perfkit.errors import ConfigurationError
from perfkit.web.types import Scope

Auth = Callable[[HTTPConnection], Any]  # the user (any object), or None to refuse; may be async
Policy = Callable[[Any, str], "bool | Awaitable[bool]"]  # (user, channel) -> allowed


async def resolve(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


@dataclass(frozen=True)
class Access:
    """The endpoint's rules. `auth=None`: anyone connects (user None); `can_publish=None`: clients never
    publish; `origins=None`: same origin only (the `Origin` header's host must be the `Host` header);
    `["*"]`: any origin. A request without `Origin` (not a browser) is not refused by origin."""

    auth: Auth | None
    can_subscribe: Policy
    can_publish: Policy | None = None
    origins: Sequence[str] | None = None

    def __post_init__(self) -> None:
        if not callable(self.can_subscribe):
            raise ConfigurationError(
                "can_subscribe", f"{self.can_subscribe!r} is not a function of (user, channel)"
            )
        if self.can_publish is not None and not callable(self.can_publish):
            raise ConfigurationError(
                "can_publish", f"{self.can_publish!r} is not a function of (user, channel)"
            )
        if self.auth is not None and not callable(self.auth):
            raise ConfigurationError("auth", f"{self.auth!r} is not a function of the connection")
        if self.origins is not None:
            if isinstance(self.origins, str) or not all(isinstance(o, str) for o in self.origins):
                raise ConfigurationError("origins", f"{self.origins!r} is not a list of origins")
            for origin in self.origins:
                if origin != "*" and not urlsplit(origin).netloc:
                    raise ConfigurationError(
                        "origins", f"{origin!r} is not an origin such as 'https://app.example.com'"
                    )

    def origin_allowed(self, scope: Scope) -> bool:
        headers = dict(scope.get("headers") or [])
        origin = headers.get(b"origin", b"").decode("latin-1").strip().lower()
        if not origin:
            return True
        if self.origins is None:
            host = headers.get(b"host", b"").decode("latin-1").strip().lower()
            return bool(host) and urlsplit(origin).netloc == host
        return "*" in self.origins or origin.rstrip("/") in {o.lower().rstrip("/") for o in self.origins}

    async def authenticate(self, scope: Scope) -> tuple[bool, Any]:
        """(accepted, user)."""
        if self.auth is None:
            return True, None
        user = await resolve(self.auth(HTTPConnection(scope)))
        return user is not None, user

    async def may_subscribe(self, user: Any, channel: str) -> bool:
        return bool(await resolve(self.can_subscribe(user, channel)))

    async def may_publish(self, user: Any, channel: str) -> bool:
        return self.can_publish is not None and bool(await resolve(self.can_publish(user, channel)))
