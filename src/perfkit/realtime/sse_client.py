"""`SseClient`: the hub's channels over Server-Sent Events, on httpx; reconnects with backoff and
jitter, resuming with `Last-Event-ID` (the position of the last event it received). A stream on which
the server refused a channel as `unavailable` (its Redis is down or busy) is opened again the same
way, at most `retries` times in a row; then the client stops (`ClientClosed`, the refusal's text)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping
from urllib.parse import urlencode

import httpx

from perfkit.realtime.client import RETRIES, ClientClosed, Event, Tracker, backoff
from perfkit.realtime.protocol import UNAVAILABLE, decode


class _Refused(Exception):
    """The stream carried an `unavailable` refusal of a wanted channel: open it again later."""


class SseClient(Tracker):
    def __init__(
        self,
        url: str,
        *,
        channels: Iterable[str],
        headers: Mapping[str, str] | None = None,
        reconnect: bool = True,
        backoff: tuple[float, float] = (0.05, 5.0),
        silence: float = 35.0,
        retries: int = RETRIES,
    ) -> None:
        super().__init__(channels)
        self.retries = retries
        self.refusals = 0  # streams in a row on which a channel was refused as `unavailable`
        self.url, self.headers, self.reconnect, self.backoff = url, dict(headers or {}), reconnect, backoff
        self.silence = silence  # seconds without a line (heartbeats included) before reconnecting
        self.last_event_id: str | None = None
        self.status: int | None = None
        self.connects = 0
        self.comments = 0  # heartbeat lines seen
        self.connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> SseClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        while True:
            yield await self.next()

    async def start(self, wait: float = 10.0) -> None:
        self._task = asyncio.create_task(self._run(), name="perfkit-realtime-sse-client")
        waiter = asyncio.ensure_future(self.connected.wait())
        done, _ = await asyncio.wait({waiter, self._task}, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if self._task in done:
            await self.next(0)
        if not self.connected.is_set():
            raise TimeoutError(f"no event stream from {self.url} within {wait}s")

    async def _run(self) -> None:
        attempt = 0
        query = urlencode([("channel", c) for c in sorted(self.wanted)])
        url = f"{self.url}{'&' if '?' in self.url else '?'}{query}"
        async with httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=self.silence)) as http:
            while True:
                headers = dict(self.headers)
                if self.last_event_id:
                    headers["Last-Event-ID"] = self.last_event_id
                try:
                    async with http.stream("GET", url, headers=headers) as response:
                        self.status = response.status_code
                        if response.status_code != 200:
                            if response.status_code in (400, 401, 403, 405) or not self.reconnect:
                                return self._stop(f"HTTP {response.status_code}", response.status_code)
                        else:
                            attempt = 0
                            self.connects += 1
                            self.connected.set()
                            await self._read(response)
                except (httpx.TransportError, OSError):
                    pass
                except _Refused as refused:
                    self.refusals += 1
                    if self.refusals > self.retries or not self.reconnect:
                        return self._stop(f"subscribe refused: {refused}", None)
                    await asyncio.sleep(backoff(self.refusals - 1, *self.backoff))
                    continue
                finally:
                    self.connected.clear()
                if not self.reconnect:
                    return self._stop("the stream ended", None)
                await asyncio.sleep(backoff(attempt, *self.backoff))
                attempt += 1

    def _stop(self, message: str, code: int | None) -> None:
        self.events.put_nowait(ClientClosed(message, code))

    def _refused(self, frame: dict[str, object], subscribed: set[str]) -> None:
        kind = frame.get("type")
        if kind == "subscribed":
            subscribed.add(str(frame.get("channel")))
            if subscribed >= self.wanted:
                self.refusals = 0  # a stream with every channel: the refusals in a row are over
        elif kind == "error" and frame.get("code") == UNAVAILABLE and frame.get("channel") in self.wanted:
            raise _Refused(str(frame.get("message")))

    async def _read(self, response: httpx.Response) -> None:
        subscribed: set[str] = set()
        event_id: str | None = None
        data: list[str] = []
        async for line in response.aiter_lines():
            if line == "":
                if data:
                    frame = decode("\n".join(data))
                    self.handle(frame)
                    if event_id is not None:
                        self.last_event_id = event_id
                    self._refused(frame, subscribed)
                event_id, data = None, []
            elif line.startswith(":"):
                self.comments += 1
            elif line.startswith("id:"):
                event_id = line[3:].lstrip(" ")
            elif line.startswith("data:"):
                data.append(line[5:].lstrip(" "))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self._stop("closed by the client", None)
