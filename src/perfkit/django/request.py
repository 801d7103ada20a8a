"""A Django request as the ASGI scope perfkit's web policies read, and a response as their messages.

perfkit.web's policies (timing, rate limit, compression, ETag/304, Cache-Control, the response-cache key)
each decide from an ASGI scope and act on ASGI messages. `scope_of(request)` builds that scope once per
request: under ASGI from the server's own scope (`request.scope`), under WSGI from `request.META`.
`route_info(...)` is the request's route as the policies know it (`perfkit.web.routing.RouteInfo`): the
URL pattern (`request.resolver_match.route`, never the raw path), the URL name, and the PERFKIT rule.
"""

from __future__ import annotations

from typing import Any

from perfkit.web.config import WebConfig
from perfkit.web.routing import SCOPE_KEY, RouteInfo
from perfkit.web.types import Headers, Message, Scope

__all__ = [
    "REQUEST_KEY",
    "RuleTable",
    "apply_changes",
    "apply_start",
    "django_user",
    "header_keys",
    "headers_of",
    "scope_of",
    "start_message",
]

REQUEST_KEY = "django.request"  # the HttpRequest, for functions of the scope (`WebConfig.user`)
# META keys that are headers without the HTTP_ prefix (PEP 3333)
_UNPREFIXED = (("CONTENT_TYPE", b"content-type"), ("CONTENT_LENGTH", b"content-length"))
_META_NAMES = {"content-type": "CONTENT_TYPE", "content-length": "CONTENT_LENGTH"}
HeaderKeys = tuple[tuple[str, bytes], ...]


def _wsgi_headers(meta: dict[str, Any], keys: HeaderKeys | None) -> Headers:
    headers: Headers = []
    if keys is not None:  # only the headers the policies read: a lookup each, not a walk over META
        for key, name in keys:
            value = meta.get(key)
            if value:
                headers.append((name, value.encode("latin-1", "replace")))
        return headers
    for key, value in meta.items():  # (an empty value carries nothing: Django's test client sends `Cookie:`)
        if key[:5] == "HTTP_" and value:
            name = key[5:].replace("_", "-").lower().encode("latin-1")
            headers.append((name, value.encode("latin-1", "replace")))
    for key, name in _UNPREFIXED:
        value = meta.get(key)
        if value:
            headers.append((name, value.encode("latin-1", "replace")))
    return headers


def header_keys(config: WebConfig) -> HeaderKeys | None:
    """The request headers perfkit's policies read under `config`, as (META key, header name) pairs; None
    (every header) when a function of the config's reads the scope (a rate-limit key, a user key)."""
    per_user = [r.cache_per_user for r in config.rules if callable(r.cache_per_user)]
    if config.rate_limit_key is not None or per_user or config.user not in (None, django_user):
        return None
    names = {config.request_id_header, "accept-encoding", "if-none-match", "if-modified-since", "host",
             *config.credential_headers, *(h for r in config.rules for h in r.cache_vary)}  # fmt: skip
    return tuple(
        (
            ("HTTP_" + n.upper().replace("-", "_")) if n not in _META_NAMES else _META_NAMES[n],
            n.encode("latin-1"),
        )
        for n in sorted(h.lower() for h in names)
    )


def scope_of(request: Any, keys: HeaderKeys | None = None) -> Scope:
    """The ASGI-style HTTP scope of `request` (a plain dict the policies may annotate). Under WSGI its
    headers are those in `keys` (`header_keys(config)`), or all of them when `keys` is None."""
    asgi = getattr(request, "scope", None)
    meta = request.META
    if asgi is not None:  # ASGIRequest: the server's headers and client as they came
        headers = [h for h in asgi.get("headers") or () if h[1]]
        client = asgi.get("client")
        query = asgi.get("query_string", b"")
        if isinstance(query, str):  # Django's AsyncRequestFactory gives a str
            query = query.encode("latin-1", "replace")
        scheme = asgi.get("scheme", "http")
    else:
        headers = _wsgi_headers(meta, keys)
        addr = meta.get("REMOTE_ADDR")
        client = (addr, int(meta.get("REMOTE_PORT") or 0)) if addr else None
        query = meta.get("QUERY_STRING", "").encode("latin-1", "replace")
        scheme = meta.get("wsgi.url_scheme", "http")
    return {
        "type": "http",
        "method": request.method,
        "scheme": scheme,
        "path": request.path_info,
        "root_path": meta.get("SCRIPT_NAME", "") or "",
        "query_string": query,
        "headers": headers,
        "client": client,
        REQUEST_KEY: request,
    }


def django_user(scope: Scope) -> str | None:
    """The default `WebConfig.user` under Django: the authenticated `request.user`'s primary key (None for
    anonymous requests and projects without `django.contrib.auth`'s middleware)."""
    request = scope.get(REQUEST_KEY)
    user = getattr(request, "user", None)
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return str(user.pk)


class RuleTable:
    """The request's `RouteInfo`: its URL pattern, its URL name, and the first PERFKIT rule that matches
    the path, the namespaced view name (`tickets:ticket-list`) or the URL name (`ticket-list`); answers
    kept in a bounded table per (method, path, view)."""

    def __init__(self, config: WebConfig, size: int = 4096) -> None:
        self.config, self.size = config, size
        self._table: dict[tuple[str, str, Any], RouteInfo] = {}

    def info(self, scope: Scope, match: Any) -> RouteInfo:
        """`match`: `request.resolver_match` (None when the URL did not resolve). Stored in the scope."""
        key = (scope["method"], scope["path"], match.view_name if match is not None else None)
        info = self._table.get(key)
        if info is None:
            info = self._compute(scope["method"], scope["path"], match)
            if len(self._table) >= self.size:
                self._table.pop(next(iter(self._table)))
            self._table[key] = info
        scope[SCOPE_KEY] = info
        return info

    def _compute(self, method: str, path: str, match: Any) -> RouteInfo:
        config = self.config
        if match is None:
            rule = config.match(method, path, None)
            return RouteInfo(rule.path if rule is not None else None, None, rule)
        view_name, url_name = match.view_name, match.url_name
        rule = config.match(method, path, view_name)
        if rule is None and url_name and url_name != view_name and config.needs_names:
            rule = config.match(method, path, url_name)
        route = getattr(match, "route", None)
        template = "/" + route if isinstance(route, str) else None
        return RouteInfo(template, url_name or view_name, rule, match.func)


def headers_of(response: Any) -> Headers:
    """A Django response's headers as ASGI header pairs, Set-Cookie included (a policy must see that the
    response sets a cookie; the handler still writes the cookies from `response.cookies`)."""
    headers: Headers = [
        (k.lower().encode("latin-1"), v.encode("latin-1", "replace")) for k, v in response.items()
    ]
    for cookie in response.cookies.values():
        headers.append((b"set-cookie", cookie.output(header="").strip().encode("latin-1", "replace")))
    return headers


def start_message(response: Any) -> Message:
    return {"type": "http.response.start", "status": response.status_code, "headers": headers_of(response)}


def apply_start(response: Any, message: Message) -> None:
    """Make `response`'s status and headers those of the start `message` a policy returned (Set-Cookie
    stays with `response.cookies`)."""
    response.status_code = message["status"]
    wanted: dict[str, str] = {}
    for k, v in message.get("headers", ()):
        name = k.decode("latin-1")
        if name == "set-cookie":
            continue
        value = v.decode("latin-1")
        wanted[name] = wanted[name] + ", " + value if name in wanted else value
    current = response.headers
    for name in [n for n in current if n.lower() not in wanted]:
        del current[name]
    for name, value in wanted.items():
        if current.get(name) != value:
            current[name] = value


def apply_changes(response: Any, before: Headers, after: Headers) -> None:
    """Write onto `response` what a policy changed from the headers `before` to `after`: one Django header
    call per header added, changed or dropped, none for the rest (Set-Cookie stays `response.cookies`')."""
    kept = set(before)
    names = {k for k, _ in after}
    for name, _ in before:
        if name not in names and name != b"set-cookie":
            text = name.decode("latin-1")
            if response.has_header(text):
                del response[text]
    changed = {k for k, v in after if (k, v) not in kept and k != b"set-cookie"}
    if not changed:
        return
    values: dict[bytes, list[bytes]] = {}
    headers = response.headers  # (Django's header mapping: one call less per header than response[...])
    for name, value in after:  # a header Django holds once: every value of a changed name, joined
        if name in changed:
            values.setdefault(name, []).append(value)
    for name, parts in values.items():
        headers[name.decode("latin-1")] = b", ".join(parts).decode("latin-1")
