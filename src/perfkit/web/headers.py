"""The few header helpers every layer shares (raw ASGI header lists: lower-case names as bytes)."""

from __future__ import annotations

from collections.abc import Iterable

from perfkit.web.types import Headers, Scope

__all__ = ["add_vary", "get", "header", "without"]


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first request header called `name` (lower-case bytes), or None."""
    for key, value in scope.get("headers") or ():
        if key == name:
            return bytes(value)
    return None


def get(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    """The first header called `name` (compared case-insensitively), or None."""
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


def without(headers: Headers, *names: bytes) -> Headers:
    """`headers` less every header called one of `names`."""
    return [(k, v) for k, v in headers if k.lower() not in names]


def add_vary(headers: Headers, value: bytes) -> None:
    """Add `value` to the Vary header unless it (or `*`) is already there."""
    for i, (key, current) in enumerate(headers):
        if key.lower() == b"vary":
            tokens = {t.strip().lower() for t in current.split(b",")}
            if value.lower() not in tokens and b"*" not in tokens:
                headers[i] = (key, current + b", " + value)
            return
    headers.append((b"vary", value))
