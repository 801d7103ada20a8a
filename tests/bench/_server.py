"""A tiny HTTP/1.1 keep-alive server on 127.0.0.1 for the bench tests (run as a subprocess).

    python _server.py PORTFILE [--stall-after N --stall-for SECONDS]

Routes: `/` 200 "hello"; `/status/NNN`; `/garbage` (not HTTP); `/chunked` (a chunked body);
`/close` (Connection: close); `/slow?ms=N`; `/json`; `/gzip` (the `/json` body, gzip-encoded);
`/__count` (requests seen before it, excluding itself). With `--stall-after`, after N requests the
whole server stops answering for `--stall-for` seconds (a GC pause, a stuck event loop), then answers
everything that queued up.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import time

COUNT = 0
STALL_UNTIL = 0.0


class Handler(asyncio.Protocol):
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.buf = b""
        self.transport: asyncio.Transport | None = None
        self.head_only = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                k, _, v = line.partition(":")
                if k.strip().lower() == "content-length":
                    length = int(v)
            if len(self.buf) < end + 4 + length:
                return
            self.buf = self.buf[end + 4 + length :]
            self.head_only = head.startswith("HEAD ")
            self.handle(head.split(" ")[1])

    def handle(self, path: str) -> None:
        global COUNT, STALL_UNTIL
        if path == "/__count":
            self.send(200, str(COUNT).encode())
            return
        COUNT += 1
        if self.args.stall_after and self.args.stall_after == COUNT:
            STALL_UNTIL = time.monotonic() + self.args.stall_for
        delay = STALL_UNTIL - time.monotonic()
        if path.startswith("/slow"):
            delay = max(delay, int(path.split("ms=")[1]) / 1000)
        if delay > 0:
            asyncio.get_running_loop().call_later(delay, self.respond, path)
        else:
            self.respond(path)

    def respond(self, path: str) -> None:
        if path.startswith("/status/"):
            self.send(int(path[8:11]), b"status")
        elif path == "/chunked":
            assert self.transport is not None
            chunks = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in (b"hello ", b"chunked ", b"world"))
            self.transport.write(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"
            )
        elif path == "/garbage":
            assert self.transport is not None
            self.transport.write(b"SSH-2.0-nonsense\r\n\r\n")
        elif path == "/close":
            self.send(200, b"bye", close=True)
        elif path == "/json":
            self.send(200, b'{"ok": true}', ctype=b"application/json")
        elif path == "/gzip":
            body = gzip.compress(b'{"ok": true}', mtime=0)
            self.send(200, body, ctype=b"application/json", extra=b"Content-Encoding: gzip\r\n")
        else:
            self.send(200, b"hello")

    def send(
        self, status: int, body: bytes, close: bool = False, ctype: bytes = b"text/plain", extra: bytes = b""
    ) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(
            b"HTTP/1.1 %d X\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s%s\r\n%s"
            % (
                status,
                ctype,
                len(body),
                extra,
                b"Connection: close\r\n" if close else b"",
                b"" if self.head_only else body,
            )
        )
        if close:
            self.transport.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stall-after", type=int, default=0)
    parser.add_argument("--stall-for", type=float, default=1.0)
    args = parser.parse_args()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Handler(args), "127.0.0.1", 0, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    print(port, flush=True)  # the test reads this line: listening from here on
    await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
