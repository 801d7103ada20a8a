"""The load generator's HTTP/1.1 client: one asyncio `Protocol` per keep-alive connection.

This is the hot path, so it is hand-written instead of using httpx or aiohttp: those parse and build
full request/response objects per call and reach a few thousand requests per CPU-second, while wrk
does ~130k. Here a request is a pre-encoded `bytes` object written as is, and a response is parsed
only as far as the status code, `Content-Length`, `Transfer-Encoding: chunked` and `Connection: close`
(the rest of the head is kept as raw bytes for scenario checks). One request is in flight per
connection (no pipelining), as a browser or an HTTP client library would do.
"""

from __future__ import annotations

import asyncio
from typing import NamedTuple

_HEAD_END = b"\r\n\r\n"
_READ_TO_CLOSE = -1


class RawResponse(NamedTuple):
    """What a connection returns: the status, the raw head (status line and headers) and the body."""

    status: int
    head: bytes
    body: bytes


class ConnectionClosed(ConnectionError):
    """The server closed the connection before the response was complete."""


class HttpProtocolError(ConnectionError):
    """The server sent something that is not an HTTP/1.1 response."""


class Connection(asyncio.Protocol):
    """One keep-alive connection; `request(data)` writes pre-encoded bytes and awaits the response."""

    def __init__(self, loop: asyncio.AbstractEventLoop, keep_body: bool = False) -> None:
        self._loop = loop
        self._keep_body = keep_body
        self.transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[RawResponse] | None = None
        self._buf = bytearray()
        self._status = 0
        self._head = b""
        self._remaining = 0  # body bytes still expected (Content-Length mode)
        self._chunked = False
        self._body = bytearray()
        self._in_body = False
        self._close_after = False
        self.closed = False
        self.sent_at = 0.0  # perf_counter() of the last write, for the timeout sweeper
        self._no_body = False  # the request in flight is a HEAD: the response has no body

    # -- asyncio.Protocol ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a stream transport, from create_connection

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            if self._in_body and self._remaining == _READ_TO_CLOSE:
                self._finish()
            else:
                waiter.set_exception(ConnectionClosed(str(exc) if exc else "connection closed by server"))
        self._waiter = None

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:
            return  # unsolicited bytes (e.g. after a timeout); dropped
        buf = self._buf
        if self._in_body:
            buf += data
        elif not buf and data[9:10] != b"1":  # the usual case: a whole head (often all) in one packet
            end = data.find(_HEAD_END)
            if end < 0:
                buf += data
                return
            if not self._parse_head(data[: end + 2]):
                return
            if not self._chunked and self._remaining == len(data) - end - 4:
                if self._keep_body:
                    self._body += data[end + 4 :]
                self._finish()  # the whole response in one packet: no buffering at all
                return
            buf += data[end + 4 :]
            self._in_body = True
        else:
            buf += data
            end = buf.find(_HEAD_END)
            if end < 0:
                return
            if not self._parse_head(bytes(buf[: end + 2])):
                return
            del buf[: end + 4]
            self._in_body = True
        if self._chunked:
            self._parse_chunks()
        elif self._remaining >= 0:
            take = min(len(buf), self._remaining)
            if self._keep_body:
                self._body += buf[:take]
            del buf[:take]
            self._remaining -= take
            if self._remaining == 0:
                self._finish()
        else:  # read until the server closes
            if self._keep_body:
                self._body += buf
            buf.clear()

    # -- requests -----------------------------------------------------------------------------------

    def request(self, data: bytes, now: float, no_body: bool = False) -> asyncio.Future[RawResponse]:
        """Write one pre-encoded request; the future resolves with its response."""
        waiter = self._loop.create_future()
        if self.closed or self.transport is None:
            waiter.set_exception(ConnectionClosed("connection is closed"))
            return waiter
        self._waiter = waiter
        self._no_body = no_body
        self.sent_at = now
        self.transport.write(data)
        return waiter

    def abort(self, exc: BaseException) -> None:
        """Fail the request in flight (timeout) and drop the connection: its state is unknown."""
        waiter = self._waiter
        self._waiter = None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        self.close()

    @property
    def busy(self) -> bool:
        return self._waiter is not None

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    # -- parsing ------------------------------------------------------------------------------------

    def _parse_head(self, head: bytes) -> bool:
        if head[:5] != b"HTTP/" or len(head) < 12:
            self._fail(HttpProtocolError(f"not an HTTP response: {head[:40]!r}"))
            return False
        try:
            status = int(head[9:12])
        except ValueError:
            self._fail(HttpProtocolError(f"bad status line: {head[:40]!r}"))
            return False
        if 100 <= status < 200:  # an interim response (100 Continue): skip it, wait for the final one
            del self._buf[: len(head) + 2]
            self.data_received(b"")
            return False
        self._status = status
        self._head = head
        low = head.lower()
        self._close_after = b"\r\nconnection: close" in low or head[5:8] == b"1.0"
        self._chunked = False
        if status in (204, 304) or self._no_body:
            self._remaining = 0
            return True
        i = low.find(b"\r\ncontent-length:")
        if i >= 0:
            j = low.find(b"\r\n", i + 2)
            self._remaining = int(low[i + 17 : j if j >= 0 else None])
        elif b"\r\ntransfer-encoding:" in low and b"chunked" in low:
            self._chunked = True
            self._remaining = 0
        else:
            self._remaining = _READ_TO_CLOSE
        return True

    def _parse_chunks(self) -> None:
        buf = self._buf
        while True:
            if self._remaining > 0:  # inside a chunk: data then CRLF
                if len(buf) < self._remaining + 2:
                    return
                if self._keep_body:
                    self._body += buf[: self._remaining]
                del buf[: self._remaining + 2]
                self._remaining = 0
            line_end = buf.find(b"\r\n")
            if line_end < 0:
                return
            size_text = bytes(buf[:line_end]).split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                self._fail(HttpProtocolError(f"bad chunk size: {size_text[:20]!r}"))
                return
            if size == 0:  # the last chunk, optional trailers, then an empty line
                if len(buf) < line_end + 4:
                    return
                if buf[line_end + 2 : line_end + 4] == b"\r\n":
                    end = line_end
                else:
                    end = buf.find(_HEAD_END, line_end)
                    if end < 0:
                        return
                del buf[: end + 4]
                self._finish()
                return
            del buf[: line_end + 2]
            self._remaining = size

    def _finish(self) -> None:
        waiter = self._waiter
        self._waiter = None
        self._in_body = False
        body = bytes(self._body) if self._keep_body else b""
        self._body.clear()
        if self._close_after:
            self.close()
        if waiter is not None and not waiter.done():
            waiter.set_result(RawResponse(self._status, self._head, body))

    def _fail(self, exc: BaseException) -> None:
        self.abort(exc)


async def open_connection(host: str, port: int, keep_body: bool = False) -> Connection:
    """Open one keep-alive TCP connection (asyncio sets TCP_NODELAY on it)."""
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_connection(lambda: Connection(loop, keep_body), host, port)
    return protocol
