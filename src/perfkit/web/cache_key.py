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
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from perfkit.web.config import Rule, WebConfig
from perfkit.web.types import Scope


class CacheKey(NamedTuple):
    """`key`: the entry's name; `personal`: the key names who asks (a user key or a credential), so a
    `Cache-Control: private` response may be kept in it; `keyed`: the request headers the key accounts
    for (a response may `Vary` on those)."""

    key: str
    personal: bool
    keyed: frozenset[bytes] = frozenset()


_HOST, _VARY, _CREDENTIAL = 1, 2, 4


class _Plan(NamedTuple):
    """What `cache_key` needs of one rule under one config, computed once."""

    vary: tuple[bytes, ...]
    roles: dict[bytes, int]  # header name -> _HOST | _VARY | _CREDENTIAL bits: one lookup per header
    keyed: frozenset[bytes]
    query: bool
    per_user: Callable[[Any], Any] | None
    public: bool


_PLANS: dict[tuple[int, int], tuple[Rule | None, WebConfig, _Plan]] = {}


def _plan(rule: Rule | None, config: WebConfig) -> _Plan:
    entry = _PLANS.get((id(rule), id(config)))
    if entry is not None and entry[0] is rule and entry[1] is config:
        return entry[2]
    vary = tuple(h.encode("latin-1") for h in rule.cache_vary) if rule is not None else ()
    per_user = None
    if rule is not None and rule.cache_per_user:
        per_user = rule.cache_per_user if callable(rule.cache_per_user) else config.user
    roles: dict[bytes, int] = {b"host": _HOST}
    for name in vary:
        roles[name] = roles.get(name, 0) | _VARY
    for name in config.credential_names:
        roles[name] = roles.get(name, 0) | _CREDENTIAL
    # credentials are accounted for whenever a key is given: absent, keyed, named by the user, or public
    keyed = frozenset(roles)
    query, public = rule is None or rule.cache_query, rule is not None and rule.cache_public
    plan = _Plan(vary, roles, keyed, query, per_user, public)
    if len(_PLANS) > 1024:
        _PLANS.clear()
    _PLANS[(id(rule), id(config))] = (rule, config, plan)
    return plan


def _part(value: bytes | None) -> bytes:
    """A prefix-free encoding (`-` for absent, else `<length>:<bytes>`): no value can pass for two parts."""
    return b"-" if value is None else b"%d:%s" % (len(value), value)


async def cache_key(scope: Scope, rule: Rule | None, config: WebConfig, prefix: str) -> CacheKey | None:
    """The key for 'the same request, for the same caller', or None when the request carries credentials
    the rule does not key on (it must bypass the cache and coalescing)."""
    plan = _plan(rule, config)
    roles = plan.roles
    host = b""
    carried: list[bytes] | None = None
    values: dict[bytes, list[bytes]] | None = None
    for name, value in scope.get("headers") or ():  # ASGI header names are lower-case
        role = roles.get(name if type(name) is bytes else bytes(name))  # (a bytearray is not hashable)
        if role is None:
            continue
        if role & _HOST and not host:
            host = bytes(value)
        if role & _VARY:
            if values is None:
                values = {}
            values.setdefault(bytes(name), []).append(bytes(value))
        if role & _CREDENTIAL:
            carried = [bytes(name)] if carried is None else [*carried, bytes(name)]
    user: str | None = None
    if plan.per_user is not None:
        user = await user_of(scope, plan.per_user)
    vary = plan.vary
    if carried is not None and user is None and not plan.public and any(c not in vary for c in carried):
        return None
    path = (scope.get("root_path", "") + scope["path"]).encode("utf-8", "replace")
    query = scope.get("query_string", b"") if plan.query else b""
    method = scope["method"].encode("latin-1")
    scheme = scope.get("scheme", "http").encode("latin-1")
    # method and scheme are tokens (no spaces); the rest are length-prefixed: unambiguous
    text = b"%s %s %d:%s%d:%s%d:%s" % (method, scheme, len(host), host, len(path), path, len(query), query)
    if vary:
        out = [text]
        for name in vary:  # every value of a repeated header, in order; absent is not empty
            found = values.get(name) if values is not None else None
            out.append(b"-" if found is None else b"%d*" % len(found) + b"".join(_part(v) for v in found))
        text = b"".join(out)
    if plan.per_user is not None:
        text += _part(None if user is None else user.encode("utf-8", "replace"))
    digest = hashlib.blake2b(text, digest_size=16).hexdigest()
    personal = user is not None or (carried is not None and any(c in vary for c in carried))
    return CacheKey(prefix + digest, personal, plan.keyed)


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
