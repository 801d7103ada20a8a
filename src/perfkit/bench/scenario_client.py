"""The client object a scenario task receives: `get`/`post`/... recorded under a request name."""

from __future__ import annotations

import asyncio
import json as _json
import time
from typing import Any

from perfkit.bench.client import HttpProtocolError, RawResponse
from perfkit.bench.metrics import Recorder
from perfkit.bench.pool import Pool
from perfkit.bench.target import encode_request


class RequestCapReached(Exception):
    """The run's request cap is reached: the user stops."""


class Response:
    """A response as a scenario sees it; `status` is 0 when there was no response (`error` says why)."""

    __slots__ = ("_head", "body", "error", "status")

    def __init__(self, status: int, head: bytes = b"", body: bytes = b"", error: str | None = None) -> None:
        self.status = status
        self._head = head
        self.body = body
        self.error = error

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
        self, pool: Pool, rec: Recorder, cap: list[int], max_requests: int, intended: float | None = None
    ):
        self._pool = pool
        self._rec = rec
        self._cap = cap
        self._max = max_requests
        self._intended = intended

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
            raise RequestCapReached
        self._cap[0] += 1
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
        except (OSError, TimeoutError) as exc:  # a failed connect counts as a request sent and failed
            rec.sent += 1
            rec.error(st, "timeout" if isinstance(exc, TimeoutError) else "connection", perf())
            return Response(0, error=f"connect: {type(exc).__name__}")
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
