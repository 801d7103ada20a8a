"""Errors as RFC 9457 problem details (`application/problem+json`), naming the field at fault.

Handlers raise `Problem`; `problem_from` turns msgspec's validation errors (`... - at `$.items[0].ttl``)
and perfkit's own errors (a `ConfigurationError` carries its setting) into one.
"""

from __future__ import annotations

import re

import msgspec

from perfkit.errors import (
    BackendUnavailableError,
    ConfigurationError,
    InvalidArgumentError,
    PerfkitError,
    SerializationError,
    ValueTooLargeError,
)

BASE = "https://perfkit.dev/problems/"
_AT = re.compile(r"^(?P<detail>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
TITLES = {
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 409: "Conflict", 412: "Precondition Failed", 413: "Content Too Large",
    415: "Unsupported Media Type", 422: "Unprocessable Content", 429: "Too Many Requests",
    500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
}  # fmt: skip


class Problem(Exception):
    """An HTTP error answer: `status`, a `kind` (the last part of its type URI), a detail, the fields."""

    def __init__(
        self,
        status: int,
        kind: str,
        detail: str,
        *,
        field: str | None = None,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status, self.kind, self.detail, self.field = status, kind, detail, field
        self.headers = headers or []

    def body(self, instance: str | None = None) -> bytes:
        doc: dict[str, object] = {
            "type": BASE + self.kind,
            "title": TITLES.get(self.status, "Error"),
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            doc["instance"] = instance
        if self.field is not None:
            doc["errors"] = [{"field": self.field, "detail": self.detail}]
        return msgspec.json.encode(doc)


def field_path(path: str) -> str:
    """`$.items[0].ttl` (msgspec's path, less the `$`) as `items[0].ttl`; the whole body is `body`."""
    return path.lstrip(".") or "body"


def validation_problem(exc: msgspec.ValidationError | msgspec.DecodeError, prefix: str = "") -> Problem:
    match = _AT.match(str(exc))
    detail = match.group("detail") if match else str(exc)
    path = match.group("path") if match and match.group("path") is not None else ""
    field = prefix + field_path(path) if path or not prefix else prefix.rstrip(".")
    if isinstance(exc, msgspec.ValidationError):
        return Problem(422, "validation", f"{field}: {detail}", field=field)
    return Problem(400, "malformed-json", f"the body is not valid JSON: {detail}", field="body")


def problem_from(exc: PerfkitError) -> Problem:
    """perfkit's own error hierarchy as a problem (a bad setting names its field)."""
    if isinstance(exc, ConfigurationError):
        return Problem(422, "invalid-argument", str(exc), field=exc.setting)
    if isinstance(exc, ValueTooLargeError):
        return Problem(413, "value-too-large", str(exc), field="value")
    if isinstance(exc, SerializationError):
        return Problem(422, "serialization", str(exc), field="value")
    if isinstance(exc, InvalidArgumentError):
        return Problem(422, "invalid-argument", str(exc))
    if isinstance(exc, BackendUnavailableError):
        return Problem(503, "backend-unavailable", str(exc))
    return Problem(500, "backend-error", str(exc))
