"""The protocol's response parser, fed byte by byte and in one piece, on a real event loop."""

from __future__ import annotations

import asyncio

import pytest

from perfkit.bench.client import Connection, ConnectionClosed, HttpProtocolError, RawResponse

RESPONSES = {
    "length": (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 200, b"hello"),
    "chunked": (
        b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: yes\r\n\r\n",
        201,
        b"abcde",
    ),
    "continue": (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", 204, b""),
    "empty": (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n", 304, b""),
}


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written.append(bytes(data))

    def close(self) -> None:
        self.closed = True


def _connection() -> tuple[Connection, FakeTransport]:
    conn = Connection(asyncio.get_running_loop(), keep_body=True)
    transport = FakeTransport()
    conn.connection_made(transport)
    return conn, transport


@pytest.mark.parametrize("kind", list(RESPONSES))
@pytest.mark.parametrize("split", [1, 7, 10_000])
async def test_parses_responses_in_any_packet_split(kind: str, split: int) -> None:
    """Content-Length, chunked with extensions and trailers, 100 Continue and 304 parse whatever
    the packet boundaries, and the connection is reusable afterwards."""
    raw, status, body = RESPONSES[kind]
    conn, transport = _connection()
    for _ in range(2):  # twice on the same connection: keep-alive state is reset
        fut = conn.request(b"GET / HTTP/1.1\r\n\r\n", 0.0)
        for i in range(0, len(raw), split):
            conn.data_received(raw[i : i + split])
        resp: RawResponse = await fut
        assert (resp.status, resp.body) == (status, body)
    assert transport.written == [b"GET / HTTP/1.1\r\n\r\n"] * 2 and not conn.closed


async def test_connection_close_and_http10() -> None:
    """'Connection: close' ends the connection after the response; a body read to EOF completes on close."""
    conn, transport = _connection()
    fut = conn.request(b"GET / HTTP/1.1\r\n\r\n", 0.0)
    conn.data_received(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
    assert (await fut).body == b"ok" and transport.closed and conn.closed
    conn, transport = _connection()
    fut = conn.request(b"GET / HTTP/1.0\r\n\r\n", 0.0)
    conn.data_received(b"HTTP/1.0 200 OK\r\n\r\nuntil ")
    conn.data_received(b"eof")
    conn.connection_lost(None)
    assert (await fut).body == b"until eof"


async def test_garbage_and_early_close_fail_the_request() -> None:
    """A non-HTTP reply is a protocol error; a close mid-response is a ConnectionClosed."""
    conn, _ = _connection()
    fut = conn.request(b"GET / HTTP/1.1\r\n\r\n", 0.0)
    conn.data_received(b"SSH-2.0-OpenSSH\r\n\r\n")
    with pytest.raises(HttpProtocolError):
        await fut
    conn, _ = _connection()
    fut = conn.request(b"GET / HTTP/1.1\r\n\r\n", 0.0)
    conn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    conn.connection_lost(None)
    with pytest.raises(ConnectionClosed):
        await fut
