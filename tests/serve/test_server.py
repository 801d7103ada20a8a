"""The server `perfkit serve` runs: uvicorn's httptools protocol on a transport that sends each loop
turn's writes in one, so a response is one socket write (its head and body together)."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from perfkit.serve.server import CoalescingTransport, server_options
from tests.serve._server import TOKENS


class Recording(asyncio.Transport):
    """A transport that keeps what is written to it (a stand-in for the socket, not for a service)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False
        self.reading = True

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8787)}.get(name, default)


async def one_turn() -> None:
    """Let the loop run the callbacks already scheduled (the transport's flush)."""
    await asyncio.sleep(0)


async def test_writes_of_one_loop_turn_leave_in_one_write_in_order() -> None:
    """Writes made in one turn reach the socket as one write, after the turn; later turns keep order."""
    raw = Recording()
    transport = CoalescingTransport(raw, asyncio.get_running_loop())
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    transport.write(b"")
    transport.writelines([b"hello", b" world"])
    assert raw.writes == []
    await one_turn()
    assert raw.writes == [b"HTTP/1.1 200 OK\r\n\r\nhello world"]
    transport.write(b"next")
    await one_turn()
    assert raw.writes[1:] == [b"next"]


async def test_close_sends_what_was_gathered_first_and_abort_drops_it() -> None:
    """close() writes the gathered bytes before closing; abort() drops them; a later flush does nothing."""
    raw = Recording()
    transport = CoalescingTransport(raw, asyncio.get_running_loop())
    transport.write(b"last response")
    transport.close()
    assert (raw.writes, raw.closed) == ([b"last response"], True)
    await one_turn()
    assert raw.writes == [b"last response"]

    other = Recording()
    aborted = CoalescingTransport(other, asyncio.get_running_loop())
    aborted.write(b"never sent")
    aborted.abort()
    await one_turn()
    assert (other.writes, other.aborted) == ([], True)


async def test_flow_control_and_extra_info_are_the_wrapped_transports() -> None:
    """pause_reading/resume_reading, get_extra_info and is_closing reach the real transport."""
    raw = Recording()
    transport = CoalescingTransport(raw, asyncio.get_running_loop())
    transport.pause_reading()
    assert raw.reading is False
    transport.resume_reading()
    assert raw.reading is True
    assert transport.get_extra_info("peername") == ("127.0.0.1", 50000)
    assert transport.is_closing() is False


async def start(protocol_class: type[HttpToolsProtocol], app: Any) -> tuple[HttpToolsProtocol, Recording]:
    """uvicorn's real protocol `protocol_class` serving `app` on a recording transport."""
    config = Config(app=app, lifespan="off", access_log=False, log_level="warning")
    config.load()
    protocol = protocol_class(config=config, server_state=ServerState(), app_state={})
    raw = Recording()
    protocol.connection_made(raw)
    return protocol, raw


async def hello(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"5")]})  # fmt: skip
    await send({"type": "http.response.body", "body": b"hello"})


async def answer(protocol_class: type[HttpToolsProtocol], request: bytes) -> list[bytes]:
    """What `protocol_class` has written to its socket for `request` when the response completes."""
    protocol, raw = await start(protocol_class, hello)
    protocol.data_received(request)
    for _ in range(20):  # the app's task runs: a few turns
        await one_turn()
        if protocol.cycle is not None and protocol.cycle.response_complete:
            break
    writes = list(raw.writes)
    protocol.connection_lost(None)
    return writes


async def test_uvicorn_answers_with_one_write_per_response_on_the_coalescing_protocol() -> None:
    """Plain httptools writes head and body apart; perfkit's protocol sends the whole response at once,
    as soon as it is complete (not a loop turn later)."""
    request = b"GET / HTTP/1.1\r\nhost: test\r\n\r\n"
    plain = await answer(HttpToolsProtocol, request)
    assert len(plain) == 2 and plain[1] == b"hello"  # the cost being removed: two writes
    coalesced = await answer(server_options()["http"], request)
    assert len(coalesced) == 1
    head, _, body = coalesced[0].partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and b"content-length: 5" in head and body == b"hello"


async def test_a_streamed_body_still_streams_each_chunk_within_its_loop_turn() -> None:
    """A body sent in parts reaches the socket part by part: the first is out before the second exists."""
    go_on = asyncio.Event()

    async def stream(scope: Any, receive: Any, send: Any) -> None:
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
        )
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        await go_on.wait()
        await send({"type": "http.response.body", "body": b"second"})

    protocol, raw = await start(server_options()["http"], stream)
    protocol.data_received(b"GET / HTTP/1.1\r\nhost: test\r\n\r\n")
    for _ in range(20):
        await one_turn()
        if raw.writes:
            break
    sent = b"".join(raw.writes)
    assert sent.startswith(b"HTTP/1.1 200 OK") and sent.endswith(b"5\r\nfirst\r\n")  # chunked
    go_on.set()
    for _ in range(20):
        await one_turn()
        if protocol.cycle.response_complete:
            break
    assert b"".join(raw.writes).endswith(b"6\r\nsecond\r\n0\r\n\r\n")
    protocol.connection_lost(None)


def read_response(sock: socket.socket, buffer: bytes) -> tuple[int, bytes, bytes]:
    """One response (status, body) read by its Content-Length from `sock`; returns what is left over."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection mid-response"
        buffer += chunk
    head, _, rest = buffer.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection mid-body"
        rest += chunk
    return int(head[9:12]), rest[:length], rest[length:]


@pytest.mark.redis
def test_pipelined_and_closing_requests_get_whole_responses_from_perfkit_serve(server: str) -> None:
    """Two requests in one packet get both answers in order; `connection: close` gets its answer, then EOF."""
    port = int(server.rsplit(":", 1)[1])
    auth = f"authorization: Bearer {TOKENS['reader']}\r\n".encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"GET /v1/job-types HTTP/1.1\r\nhost: t\r\n" + auth + b"\r\n"
            b"GET /v1/nothing HTTP/1.1\r\nhost: t\r\n" + auth + b"\r\n"
        )
        first, body, rest = read_response(sock, b"")
        second, problem, rest = read_response(sock, rest)
        assert (first, second) == (200, 404) and body.startswith(b"{") and b"not-found" in problem
        sock.sendall(b"GET /v1/job-types HTTP/1.1\r\nhost: t\r\nconnection: close\r\n" + auth + b"\r\n")
        third, body, rest = read_response(sock, rest)
        assert third == 200 and body.startswith(b"{")
        assert rest == b"" and sock.recv(65536) == b""  # closed after the whole response
