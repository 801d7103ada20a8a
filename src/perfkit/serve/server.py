"""The HTTP server `perfkit serve` runs its app under: uvicorn, with httptools and uvloop when installed,
and one socket write per response.

uvicorn's httptools protocol writes a response's head when the app sends `http.response.start` and its
body when the app sends `http.response.body`: two `transport.write` calls, so two send() system calls
and, on uvloop's TCP_NODELAY sockets, two TCP segments for the client to wake up to. Every answer of
`perfkit serve` is a head and one body, sent back to back, so `CoalescingTransport` gathers them and
the protocol sends them in one write the moment uvicorn has the response complete (before it reads the
next pipelined request): under keep-alive load a request costs about one write instead of two (`strace
-c`: 2.06 -> 1.09 writes per request, benchmarks/serve.py). Writes outside a whole response (a streamed
body's chunks, `100 Continue`) leave at the end of the loop turn they were made in at the latest.
Nothing is reordered; `close()` sends what is gathered first.
No server option or library does this (uvicorn, h11 and httptools leave writes to the protocol), so it
is a thin wrapper around uvicorn's own transport, not a copy of its protocol.
"""

from __future__ import annotations

import asyncio
from typing import Any


class CoalescingTransport:
    """A stream transport whose writes within one loop turn leave in one `write` of the transport it
    wraps; everything else (flow control, extra info, closing) is that transport's."""

    __slots__ = ("_later", "_loop", "_pending", "is_closing", "transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.transport = transport
        self.is_closing = transport.is_closing  # asked on every request: not through __getattr__
        self._loop = loop
        self._pending: list[bytes] = []
        self._later: asyncio.Handle | None = None  # the end-of-turn flush, while bytes wait

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if not self._pending:
            self._later = self._loop.call_soon(self.flush)
        self._pending.append(data)  # type: ignore[arg-type]  # joined as bytes in flush

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        """Send what was gathered now (a no-op when nothing waits); the end-of-turn flush is called off,
        so the loop does not turn once more for it."""
        if self._later is not None:
            self._later.cancel()
            self._later = None
        pending, self._pending = self._pending, []
        if pending and not self.is_closing():
            self.transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def abort(self) -> None:
        self._pending = []  # dropped: the flush only calls off the end-of-turn one
        self.flush()
        self.transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


def server_options() -> dict[str, Any]:
    """uvicorn.run's `http` and `loop`: httptools (with one write per response) and uvloop when installed
    (the `serve` extra brings them), several times h11's rate; uvicorn's defaults otherwise."""
    options: dict[str, Any] = {}
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # httptools is not installed
        pass
    else:

        class CoalescingHttpToolsProtocol(HttpToolsProtocol):
            """uvicorn's httptools protocol on a `CoalescingTransport`, flushed as each response completes."""

            def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
                wrapped = CoalescingTransport(transport, asyncio.get_running_loop())
                super().connection_made(wrapped)  # type: ignore[arg-type]  # a Transport in all it uses

            def on_response_complete(self) -> None:
                self.transport.flush()  # type: ignore[attr-defined]  # the CoalescingTransport
                super().on_response_complete()

        options["http"] = CoalescingHttpToolsProtocol
    try:
        import uvloop  # noqa: F401
    except ImportError:
        pass
    else:
        options["loop"] = "uvloop"
    return options
