"""The client object a scenario task receives: `get`/`post`/... recorded under a request name."""

from __future__ import annotations

import asyncio
import json as _json
import time
import zlib
from typing import Any

from perfkit.bench.client import HttpProtocolError, RawResponse
from perfkit.bench.pool import Pool
from perfkit.bench.recorder import Recorder
from perfkit.bench.stop import Stop
from perfkit.bench.target import encode_request
from perfkit.errors import MissingDependencyError


class StopUser(Exception):
    """The run's request cap or its end is reached: the user stops (not counted as a failure)."""


def _decode(body: bytes, encoding: str) -> bytes:
    """Undo a `Content-Encoding` (gzip, deflate, br, identity; several in order of application)."""
    for coding in reversed([c.strip().lower() for c in encoding.split(",") if c.strip()]):
        if coding in ("identity", ""):
            continue
        if coding in ("gzip", "x-gzip"):
            body = zlib.decompress(body, 16 + zlib.MAX_WBITS)
        elif coding == "deflate":
            try:
                body = zlib.decompress(body)
            except zlib.error:  # some servers send a raw deflate stream without the zlib wrapper
                body = zlib.decompress(body, -zlib.MAX_WBITS)
        elif coding == "br":
            try:
                import brotli
            except ImportError:  # pragma: no cover - the cli extra installs it
                raise MissingDependencyError("Content-Encoding: br", "brotli", "cli") from None
            body = brotli.decompress(body)
        else:
            raise ValueError(f"Content-Encoding {coding!r} is not supported (gzip, deflate, br)")
    return body


class Response:
    """A response as a scenario sees it; `status` is 0 when there was no response (`error` says why).

    `body`, `text` and `json()` are the content with any `Content-Encoding` undone (decoded once, on
    first use); `raw` is the body as it came over the wire.
    """

    __slots__ = ("_content", "_head", "error", "raw", "status")

    def __init__(self, status: int, head: bytes = b"", body: bytes = b"", error: str | None = None) -> None:
        self.status = status
        self._head = head
        self.raw = body
        self.error = error
        self._content: bytes | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 400

    @property
    def headers(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for line in self._head.decode("latin-1").split("\r\n")[1:]:
            key, sep, value = line.partition(":")
            if sep:
                out[key.strip().lower()] = value.strip()
        return out

    @property
    def body(self) -> bytes:
        if self._content is None:
            encoding = self.headers.get("content-encoding", "")
            self._content = _decode(self.raw, encoding) if encoding else self.raw
        return self._content

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return _json.loads(self.body)


class ScenarioClient:
    """Sends requests through the shared pool and records each under its name.

    `intended` is the open model's scheduled start of this iteration: the first request's latency is
    measured from it (coordinated-omission correction); later ones from their own send time.
    """

    def __init__(
        self,
        pool: Pool,
        rec: Recorder,
        cap: list[int],
        max_requests: int,
        stop: Stop,
        intended: float | None = None,
    ):
        self._pool = pool
        self._rec = rec
        self._cap = cap
        self._max = max_requests
        self._stop = stop
        self._intended = intended
        self._first = intended is not None  # an open-model iteration that has not sent yet

    def _stopped(self) -> StopUser:
        """The run is over before this request was sent; an iteration that never sent is dropped."""
        if self._first:
            self._rec.dropped += 1
            self._first = False
        return StopUser()

    async def request(
        self,
        method: str,
        path: str,
        *,
        name: str | None = None,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
        json: Any = None,
    ) -> Response:
        if self._cap[0] >= self._max:
            raise StopUser
        if self._stop.over:
            raise self._stopped()
        hdrs = dict(headers or {})
        if json is not None:
            body = _json.dumps(json).encode()
            hdrs.setdefault("Content-Type", "application/json")
        data = encode_request(self._pool.endpoint, method, path, tuple(hdrs.items()), body)
        rec = self._rec
        st = rec.stats(name or f"{method} {path.split('?')[0]}")
        perf = time.perf_counter
        try:
            conn = await self._pool.acquire()
        except asyncio.CancelledError:  # the run's bound came while waiting for a connection
            self._stopped()
            raise
        except (OSError, TimeoutError) as exc:  # a failed connect counts as a request sent and failed
            if self._cap[0] >= self._max:
                raise StopUser from None
            self._cap[0] += 1
            self._first = False
            rec.sent += 1
            rec.error(st, "timeout" if isinstance(exc, TimeoutError) else "connection", perf())
            return Response(0, error=f"connect: {type(exc).__name__}")
        if self._stop.over or self._cap[0] >= self._max:
            self._pool.release(conn)
            raise self._stopped() if self._stop.over else StopUser()
        self._cap[0] += 1
        self._first = False
        rec.sent += 1
        try:
            now = perf()
            resp: RawResponse = await conn.request(data, now, no_body=method == "HEAD")
        except asyncio.CancelledError:
            rec.error(st, "timeout", perf())
            conn.close()
            raise
        except TimeoutError:
            rec.error(st, "timeout", perf())
            return Response(0, error="timeout")
        except HttpProtocolError as exc:
            rec.error(st, "protocol", perf())
            return Response(0, error=f"protocol: {exc}")
        except OSError as exc:
            rec.error(st, "connection", perf())
            return Response(0, error=f"{type(exc).__name__}: {exc}")
        finally:
            self._pool.release(conn)
        intended = self._intended if self._intended is not None and self._intended < now else now
        self._intended = None
        rec.record(st, resp.status, intended, now, perf())
        return Response(resp.status, resp.head, resp.body)

    async def get(self, path: str, **kw: Any) -> Response:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, **kw: Any) -> Response:
        return await self.request("POST", path, **kw)

    async def put(self, path: str, **kw: Any) -> Response:
        return await self.request("PUT", path, **kw)

    async def patch(self, path: str, **kw: Any) -> Response:
        return await self.request("PATCH", path, **kw)

    async def delete(self, path: str, **kw: Any) -> Response:
        return await self.request("DELETE", path, **kw)

    async def head(self, path: str, **kw: Any) -> Response:
        return await self.request("HEAD", path, **kw)
