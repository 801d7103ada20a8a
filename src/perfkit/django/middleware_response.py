"""A Django response through perfkit.web's send-layer filters (compression, ETag/304, Cache-Control).

The filters speak ASGI messages (`perfkit.web.layer`): a complete response is its start message and one
body message; what comes out is written back onto the same `HttpResponse` object (status, headers,
content), so cookies, `closed` hooks and attributes other middleware set stay. A streaming response
stays streaming: its start goes through the filters with an empty first chunk (a filter that holds the
start until the body begins lets it go then: a streamed body is never buffered), and each chunk of
`streaming_content` (a sync or an async iterator, as the view gave it) is filtered as it is produced.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from typing import Any

from perfkit.django.request import apply_changes, apply_start, headers_of, start_message
from perfkit.web.pipeline import Filter, run_filters
from perfkit.web.types import Headers, Message

__all__ = ["filter_response"]

Stamp = Callable[[], Headers]
_FIRST: Message = {"type": "http.response.body", "body": b"", "more_body": True}


def _run(filters: Sequence[Filter], start: Message | None, message: Message) -> Sequence[Message]:
    """`message` (after the response's `start`, when given) through `filters`, as the ASGI pipeline
    runs them: a filter gets the start together with the first message after it."""
    if not filters:
        return (message,) if start is None else (start, message)
    return filters[0](start, message) if len(filters) == 1 else run_filters(filters, start, message)


def _chunk(body: bytes) -> Message:
    return {"type": "http.response.body", "body": body, "more_body": True}


def _bodies(messages: Iterable[Message]) -> bytes:
    return b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")


def _complete(response: Any, filters: Sequence[Filter], stamp: Stamp) -> int:
    body = response.content
    if not filters:  # nothing to filter: the stamp's headers alone
        headers = response.headers  # (Django's header mapping: one call less per header than response[...])
        for name, value in stamp():
            headers[name.decode("latin-1")] = value.decode("latin-1")
        return len(body)
    before = headers_of(response)
    start_in = {"type": "http.response.start", "status": response.status_code, "headers": before}
    out = [*_run(filters, start_in, {"type": "http.response.body", "body": body})]
    if len(out) == 2 and out[0]["type"] == "http.response.start":  # the usual: one start, one body
        start, content = out[0], out[1].get("body", b"")
    else:
        found = [m for m in out if m["type"] == "http.response.start"]
        if not found:  # a filter swallowed the response (never, for perfkit's): leave it as it was
            return len(body)
        start, content = found[0], _bodies(out)
    if start["status"] != response.status_code:
        response.status_code = start["status"]
    apply_changes(response, before, [*start.get("headers", ()), *stamp()])
    if content is not body and content != body:
        response.content = content
    return len(content)


def _streaming(response: Any, filters: Sequence[Filter], stamp: Stamp, done: Callable[[int], None]) -> None:
    out = [*_run(filters, start_message(response), dict(_FIRST))]
    start = next((m for m in out if m["type"] == "http.response.start"), None)
    if start is None:
        return
    apply_start(response, {**start, "headers": [*start.get("headers", ()), *stamp()]})
    first = _bodies(out)
    if response.is_async:
        response.streaming_content = _achunks(response.streaming_content, filters, first, done)
    else:
        response.streaming_content = _chunks(response.streaming_content, filters, first, done)


class _Stream:
    """One streamed body through the filters, counted: what the sync and the async iterator share."""

    def __init__(self, filters: Sequence[Filter], done: Callable[[int], None] | None) -> None:
        self.filters, self.done, self.size = filters, done, 0

    def out(self, message: Message) -> bytes:
        data = _bodies(_run(self.filters, None, message))
        self.size += len(data)
        return data

    def first(self, data: bytes) -> bytes:
        self.size += len(data)
        return data

    def last(self) -> bytes:
        return self.out({"type": "http.response.body", "body": b"", "more_body": False})

    def close(self) -> None:
        if self.done is not None:
            self.done(self.size)


def _chunks(
    source: Iterator[bytes], filters: Sequence[Filter], first: bytes, done: Callable[[int], None] | None
) -> Iterator[bytes]:
    stream = _Stream(filters, done)
    try:
        if first:
            yield stream.first(first)
        for chunk in source:
            data = stream.out(_chunk(chunk))
            if data:
                yield data
        last = stream.last()
        if last:
            yield last
    finally:
        stream.close()


async def _achunks(
    source: AsyncIterator[bytes], filters: Sequence[Filter], first: bytes, done: Callable[[int], None] | None
) -> AsyncIterator[bytes]:
    stream = _Stream(filters, done)
    try:
        if first:
            yield stream.first(first)
        async for chunk in source:
            data = stream.out(_chunk(chunk))
            if data:
                yield data
        last = stream.last()
        if last:
            yield last
    finally:
        stream.close()


def filter_response(
    response: Any, filters: Sequence[Filter], stamp: Stamp, done: Callable[[int], None]
) -> int | None:
    """Run `response` through `filters` (innermost first), in place, and add the headers `stamp()` gives
    (the request id, Server-Timing: taken after the filters ran, as the ASGI pipeline does). Returns the
    body size of a complete response; None for a streaming one, whose `done(size)` is called when its last
    chunk was produced (or the stream was closed early)."""
    if not getattr(response, "streaming", False):
        return _complete(response, filters, stamp)
    if filters:
        _streaming(response, filters, stamp, done)
    else:
        headers = response.headers
        for name, value in stamp():
            headers[name.decode("latin-1")] = value.decode("latin-1")
        _wrap_count(response, done)
    return None


def _wrap_count(response: Any, done: Callable[[int], None]) -> None:
    """A streaming response with no filter: only counted (its size when the stream ends)."""
    if response.is_async:
        response.streaming_content = _achunks(response.streaming_content, (), b"", done)
    else:
        response.streaming_content = _chunks(response.streaming_content, (), b"", done)
