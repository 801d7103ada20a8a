"""The service's HTTP plumbing on raw ASGI: a request (body read within the size limit), a response,
and the route table that both dispatches and describes (the OpenAPI document is built from it).

No framework: a route is a method, a path template and a handler; each request costs one dict lookup
for static paths or a few compiled regexes for templated ones.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote

import msgspec

from perfkit.serve.problems import Problem, validation_problem
from perfkit.web.types import Receive, Scope, Send

T = TypeVar("T")
JSON = b"application/json"
_decoders: dict[type, msgspec.json.Decoder[Any]] = {}
_encoder = msgspec.json.Encoder()
encode = _encoder.encode


@dataclass(slots=True)
class Request:
    scope: Scope
    method: str
    path: str
    params: dict[str, str]
    body: bytes = b""
    token_name: str = ""
    _query: dict[str, list[str]] | None = None

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.scope["headers"]:
            if key == name:
                return bytes(value)
        return None

    @property
    def query(self) -> dict[str, list[str]]:
        if self._query is None:
            raw = self.scope.get("query_string", b"").decode("latin-1")
            self._query = parse_qs(raw, keep_blank_values=True)
        return self._query

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def json(self, kind: type[T]) -> T:
        """The body decoded into `kind`; a problem naming the field when it does not fit."""
        decoder = _decoders.get(kind)
        if decoder is None:
            decoder = _decoders[kind] = msgspec.json.Decoder(kind)
        if not self.body:
            raise Problem(422, "validation", "body: a JSON body is required", field="body")
        try:
            return decoder.decode(self.body)  # type: ignore[no-any-return]
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise validation_problem(exc) from None

    @property
    def content_type(self) -> bytes:
        value = self.header(b"content-type") or JSON
        return value.split(b";", 1)[0].strip().lower()


@dataclass(slots=True)
class Response:
    status: int = 200
    body: bytes = b""
    content_type: bytes | None = JSON
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)

    async def send(self, send: Send) -> None:
        headers = list(self.headers)
        if self.content_type is not None and self.status not in (204, 304):
            headers.append((b"content-type", self.content_type))
        if self.status not in (204, 304):
            headers.append((b"content-length", str(len(self.body)).encode()))
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send(
            {"type": "http.response.body", "body": self.body if self.status not in (204, 304) else b""}
        )


def json_response(
    value: Any, status: int = 200, headers: list[tuple[bytes, bytes]] | None = None
) -> Response:
    return Response(status, encode(value), JSON, headers or [])


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The whole request body; 413 as soon as it is known to exceed `limit` bytes."""
    for key, value in scope["headers"]:
        if key == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                raise Problem(400, "bad-request", "content-length is not a number") from None
            if declared > limit:
                raise Problem(413, "body-too-large", f"the body is {declared} bytes, over the {limit} limit")
            break
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Problem(400, "bad-request", "the client went away")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise Problem(413, "body-too-large", f"the body is over the {limit} byte limit")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class Route:
    """One operation: dispatch (method, template, handler, scope needed) and its description."""

    method: str
    template: str  # "/v1/cache/{namespace}/keys/{key...}": `...` takes the rest of the path
    handler: Handler
    scope: str  # "read", "write" or "admin" (or "" for none: only if opened explicitly)
    operation_id: str
    summary: str
    request: Any = None  # a msgspec struct type, or "bytes" for application/octet-stream, or None
    response: Any = None  # the 2xx body type (a struct type), "value", or None for no body
    status: int = 200
    query: tuple[tuple[str, str, str], ...] = ()  # (name, JSON type, description)
    users: str = ""  # the users' endpoint this one answers (docs/service.md's table)


def _compile(template: str) -> tuple[re.Pattern[str], list[str]]:
    names: list[str] = []

    def part(match: re.Match[str]) -> str:
        name = match.group(1)
        rest = name.endswith("...")
        names.append(name.removesuffix("..."))
        return f"(?P<{name.removesuffix('...')}>{'.+' if rest else '[^/]+'})"

    return re.compile("^" + re.sub(r"\{([^}]+)\}", part, template) + "$"), names


class Router:
    def __init__(self, routes: list[Route]) -> None:
        self.routes = routes
        self.static: dict[tuple[str, str], Route] = {}
        self.dynamic: list[tuple[re.Pattern[str], Route]] = []
        for route in routes:
            if "{" in route.template:
                self.dynamic.append((_compile(route.template)[0], route))
            else:
                self.static[(route.method, route.template)] = route

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        route = self.static.get((method, path))
        if route is not None:
            return route, {}
        allowed: list[str] = []
        for pattern, candidate in self.dynamic:
            found = pattern.match(path)
            if found is None:
                continue
            if candidate.method != method:
                allowed.append(candidate.method)
                continue
            return candidate, {k: unquote(v) for k, v in found.groupdict().items()}
        allowed += [m for (m, p) in self.static if p == path]
        if allowed:
            raise Problem(
                405, "method-not-allowed", f"{method} is not allowed on {path}",
                headers=[(b"allow", ", ".join(sorted(set(allowed))).encode())],
            )  # fmt: skip
        raise Problem(404, "not-found", f"no endpoint at {path}")
