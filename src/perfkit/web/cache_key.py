"""Who may share a response: the key of the response cache and of request coalescing, and what is shared.

Two requests share one entry (or one run of the endpoint) only when they have the same key: method,
scheme, host, path, query (unless `cache_query=False`), the request headers in `cache_vary`, and the user
key when the rule is per user. A request that carries credentials (`Authorization`, `Cookie`, or
`WebConfig.credential_headers`) is kept apart from everyone else's (RFC 9111 §3.5: a shared cache does not
reuse a response to a request with `Authorization`):

- by default it bypasses the cache and coalescing: nothing read, nothing stored, the app runs (and
  authenticates) every time;
- a rule opts in per user with an explicit key: `cache_vary=("authorization",)` keys each entry by the
  credential header's value (each token its own entry), `cache_per_user=True` (with `WebConfig.user`) or
  `cache_per_user=<callable>` by the user key it returns; a request without credentials then never meets
  an entry made with them (its key has no credential and no user);
- `cache_public=True` declares the response the same for everyone: credentials are ignored and a hit skips
  the app's authentication, so use it only where the endpoint answers anonymous requests the same way.

A `Cache-Control: public` or `s-maxage` in the response is not taken as that declaration: the cache must
decide before the app runs (a hit never reaches the authentication code), and such headers are often set
for a CDN or by a framework default on routes that do check who asks. The rule says it, or nothing does.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from perfkit.web._asgi import Scope
from perfkit.web.config import Rule, WebConfig


@dataclass(frozen=True, slots=True)
class CacheKey:
    """`key`: the entry's name; `personal`: the key names who asks (a user key or a credential), so a
    `Cache-Control: private` response may be kept in it."""

    key: str
    personal: bool
    keyed: frozenset[bytes] = (
        frozenset()
    )  # request headers the key accounts for (a response may Vary on them)


def credentials_in(scope: Scope, names: Iterable[bytes]) -> list[bytes]:
    """The credential headers (lower-case names) this request carries."""
    wanted = set(names)
    found = []
    for name, _ in scope.get("headers") or ():
        key = bytes(name).lower()
        if key in wanted and key not in found:
            found.append(key)
    return found


async def cache_key(scope: Scope, rule: Rule | None, config: WebConfig, prefix: str) -> CacheKey | None:
    """The key for 'the same request, for the same caller', or None when the request carries credentials
    the rule does not key on (it must bypass the cache and coalescing)."""
    credentials = credentials_in(scope, config.credential_names)
    vary = rule.cache_vary if rule is not None else ()
    user: str | None = None
    if rule is not None and rule.cache_per_user:
        func = rule.cache_per_user if callable(rule.cache_per_user) else config.user
        user = await user_of(scope, func)
    public = rule is not None and rule.cache_public
    unkeyed = [c for c in credentials if c.decode("latin-1") not in vary]
    if unkeyed and user is None and not public:
        return None
    wanted = {"host", *vary}
    headers: dict[str, list[str]] = {}
    for raw, value in scope.get("headers") or ():
        name = bytes(raw).lower().decode("latin-1")
        if name in wanted:
            headers.setdefault(name, []).append(bytes(value).decode("latin-1"))
    host = headers.get("host", [""])[0]
    parts: list[Any] = [scope["method"], scope.get("scheme", "http"), host,
                        scope.get("root_path", "") + scope["path"]]  # fmt: skip
    if rule is None or rule.cache_query:
        parts.append(scope.get("query_string", b"").decode("latin-1"))
    parts.extend(headers.get(h) for h in vary)  # every value of a repeated header; None when absent
    if rule is not None and rule.cache_per_user:
        parts.append(user)
    text = json.dumps(parts, separators=(",", ":"))  # unambiguous: no value can pass for two parts
    digest = hashlib.blake2b(text.encode("utf-8", "replace"), digest_size=16).hexdigest()
    personal = user is not None or any(c.decode("latin-1") in vary for c in credentials)
    # credentials are accounted for whenever a key is given: absent, keyed, named by the user, or public
    keyed = frozenset([b"host", *(h.encode("latin-1") for h in vary), *config.credential_names])
    return CacheKey(prefix + digest, personal, keyed)


async def user_of(scope: Scope, func: Callable[[Any], Any] | None) -> str | None:
    if func is None:
        return None
    value = func(dict(scope))
    if inspect.isawaitable(value):
        value = await value
    return None if value is None else str(value)


def shareable(headers: Iterable[tuple[bytes, bytes]], key: CacheKey) -> bool:
    """May this response be given to another request with the same key? Never one that sets a cookie
    (a session issued to one client), nor a `private` one unless the key names who asks, nor one that
    varies (`Vary`) on a request header the key does not account for (or on `*`)."""
    for name, value in headers:
        k = name.lower()
        if k == b"set-cookie":
            return False
        if k == b"cache-control" and not key.personal and b"private" in value.lower():
            return False
        if k == b"vary" and any(
            token.strip().lower() not in key.keyed for token in value.split(b",") if token.strip()
        ):
            return False
    return True
