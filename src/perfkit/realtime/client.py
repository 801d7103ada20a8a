"""The Python client (tests, benchmarks, service-to-service), on `websockets`; `SseClient` reads the
same channels over Server-Sent Events with httpx (perfkit.realtime.sse_client).

    async with Client("ws://127.0.0.1:8000/ws", channels=["user:7"]) as client:
        async for event in client:            # Message(channel, epoch, offset, data) or Resync(...)
            ...

It reconnects with exponential backoff and full jitter, resubscribes every channel from the last
offset it received (so nothing within the history window is lost or repeated), answers the server's
pings, and stops for good on the close codes that say a retry cannot help (4400, 4401, a refused
handshake): `ClientClosed` then carries the code. A subscribe the server refuses as `unavailable`
(its Redis is down or busy) is sent again, from the channel's last offset, with the same backoff and
jitter, at most `retries` times in a row; after that the channel is given up (`client.refused`) and
`subscribe()` raises the `RequestError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any, NamedTuple

import websockets
from websockets.asyncio.client import ClientConnection, connect

from perfkit.errors import PerfkitError
from perfkit.realtime.protocol import UNAVAILABLE, Position, decode, encode

FINAL = {4400, 4401, 4403}  # close codes after which reconnecting cannot help
REQUEST_TIMEOUT = 10.0
RETRIES = 10  # `unavailable` refusals of one channel in a row before the client gives it up
DEFAULT_SILENCE = 35.0  # seconds, until the server's `welcome` says its heartbeat


class Message(NamedTuple):
    channel: str
    epoch: str
    offset: int
    data: Any


class Resync(NamedTuple):
    channel: str
    epoch: str
    offset: int
    reason: str


Event = Message | Resync


class ClientClosed(PerfkitError):
    """The client stopped: closed by the caller or by a final close code (`code`)."""

    def __init__(self, message: str, code: int | None = None) -> None:
        self.code = code
        super().__init__(message)


class RequestError(PerfkitError):
    """The server answered a request with an `error` frame; `code` is its reason code."""

    def __init__(self, frame: Mapping[str, Any]) -> None:
        self.code = str(frame.get("code"))
        self.frame = dict(frame)
        super().__init__(f"{self.code}: {frame.get('message')}")


class Tracker:
    """What both clients share: positions per channel, frames turned into events (without duplicates)."""

    def __init__(self, channels: Iterable[str]) -> None:
        self.wanted: set[str] = set(channels)
        self.positions: dict[str, Position] = {}
        self.events: asyncio.Queue[Event | ClientClosed] = asyncio.Queue()
        self.frames: list[dict[str, Any]] = []  # control frames seen (welcome, subscribed, ...), newest last
        self.rtt: float | None = None

    def handle(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == "message":
            self.message(frame)
        elif kind == "batch":
            for item in frame.get("messages", []):
                self.message(item)
        elif kind == "resync":
            position = Position(frame["epoch"], frame["offset"])
            self.positions[frame["channel"]] = position
            self.events.put_nowait(Resync(frame["channel"], *position, frame.get("reason", "")))
        else:
            if kind == "subscribed":
                self.positions[frame["channel"]] = Position(frame["epoch"], frame["offset"])
            elif kind == "ping" and frame.get("rtt") is not None:
                self.rtt = frame["rtt"] / 1000
            self.frames.append(frame)
            del self.frames[:-100]

    def message(self, frame: dict[str, Any]) -> None:
        channel, epoch, offset = frame["channel"], frame["epoch"], frame["offset"]
        seen = self.positions.get(channel)
        if seen is not None and seen.epoch == epoch and offset <= seen.offset:
            return  # already delivered (a resume that overlapped)
        self.positions[channel] = Position(epoch, offset)
        self.events.put_nowait(Message(channel, epoch, offset, frame.get("data")))

    async def next(self, wait: float | None = None) -> Event:
        """The next event, waiting at most `wait` seconds (None: as long as it takes)."""
        async with asyncio.timeout(wait):
            item = await self.events.get()
        if isinstance(item, ClientClosed):
            self.events.put_nowait(item)  # every later call raises too
            raise item
        return item

    def drain(self) -> list[Event]:
        """The events received so far, without waiting."""
        found: list[Event] = []
        while not self.events.empty():
            item = self.events.get_nowait()
            if isinstance(item, ClientClosed):
                self.events.put_nowait(item)
                break
            found.append(item)
        return found


def backoff(attempt: int, first: float, longest: float) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(longest, first * 2**attempt)]."""
    return random.uniform(0, min(longest, first * 2 ** min(attempt, 30)))


class Client(Tracker):
    def __init__(
        self,
        url: str,
        *,
        channels: Iterable[str] = (),
        headers: Mapping[str, str] | None = None,
        origin: str | None = None,
        reconnect: bool = True,
        backoff: tuple[float, float] = (0.05, 5.0),
        answer_pings: bool = True,
        silence: float | None = None,
        retries: int = RETRIES,
    ) -> None:
        super().__init__(channels)
        self.retries = retries
        self.refused: dict[str, dict[str, Any]] = {}  # channels given up: their last refusal
        self._attempts: dict[str, int] = {}  # `unavailable` refusals in a row, per channel
        self._later: set[asyncio.Task[None]] = set()
        # seconds without any frame after which the server counts as dead and the client reconnects;
        # None: from the server's `welcome` (2 x heartbeat + 5, the server's own rule)
        self.silence = silence
        self.url, self.headers, self.origin = url, dict(headers or {}), origin
        self.reconnect, self.backoff, self.answer_pings = reconnect, backoff, answer_pings
        self.ws: ClientConnection | None = None
        self.connects = 0
        self.close_code: int | None = None
        self.connected = asyncio.Event()
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Client:
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
        """Connect (and subscribe to `channels`); returns once the first connection is up."""
        self._task = asyncio.create_task(self._run(), name="perfkit-realtime-client")
        waiter = asyncio.ensure_future(self.connected.wait())
        done, _ = await asyncio.wait({waiter, self._task}, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if self._task in done:
            self._task.result()
            await self.next(0)  # raises the ClientClosed that ended it
        if not self.connected.is_set():
            raise TimeoutError(f"no connection to {self.url} within {wait}s")

    async def _run(self) -> None:
        attempt = 0
        while True:
            try:
                async with connect(
                    self.url, additional_headers=self.headers, origin=self.origin,  # type: ignore[arg-type]
                    ping_interval=None, open_timeout=5, close_timeout=1, max_size=2**24,
                ) as ws:  # fmt: skip
                    self.ws, attempt = ws, 0
                    self.connects += 1
                    await self._resubscribe(ws)
                    self.connected.set()
                    await self._read(ws)
            except websockets.InvalidStatus as exc:
                self.close_code = exc.response.status_code
                if self.close_code in (401, 403) or not self.reconnect:
                    return self._stop(f"handshake refused: HTTP {self.close_code}", self.close_code)
            except websockets.ConnectionClosed as exc:
                self.close_code = exc.rcvd.code if exc.rcvd is not None else None
                if self.close_code in FINAL or not self.reconnect:
                    reason = exc.rcvd.reason if exc.rcvd is not None else ""
                    return self._stop(f"closed by the server: {self.close_code} {reason}", self.close_code)
            except (OSError, TimeoutError):
                if not self.reconnect:
                    return self._stop("connection failed", None)
            finally:
                self.ws = None
                self.connected.clear()
                for future in self._waiting.values():
                    if not future.done():
                        future.set_exception(ConnectionError("the connection was lost"))
                self._waiting.clear()
            await asyncio.sleep(backoff(attempt, *self.backoff))
            attempt += 1

    def _stop(self, message: str, code: int | None) -> None:
        self.events.put_nowait(ClientClosed(message, code))

    async def _resubscribe(self, ws: ClientConnection) -> None:
        for channel in sorted(self.wanted):
            await ws.send(encode(self._subscribe_request(channel)).decode())

    async def _read(self, ws: ClientConnection) -> None:
        limit = self.silence
        while True:
            async with asyncio.timeout(limit or DEFAULT_SILENCE):  # a silent server: TimeoutError, reconnect
                raw = await ws.recv()
            frame = decode(raw)
            if frame.get("type") == "welcome" and self.silence is None:
                limit = 2 * float(frame.get("heartbeat") or 15) + 5
            kind = frame.get("type")
            if kind == "ping" and self.answer_pings:
                await ws.send(encode({"type": "pong", "t": frame.get("t")}).decode())
            self.handle(frame)
            future = self._waiting.pop(frame["id"], None) if "id" in frame else None
            if future is not None and not future.done():
                future.set_result(frame)
            elif kind == "error":
                self._refusal(ws, frame)
            if kind == "subscribed":
                self._attempts.pop(frame["channel"], None)

    def _refusal(self, ws: ClientConnection, frame: dict[str, Any]) -> None:
        """A subscribe of the connection's own (at connect, on a retry) was refused: retry later if
        the server said `unavailable`, from the channel's last offset; give the channel up after
        `retries` refusals in a row."""
        channel = frame.get("channel")
        if frame.get("code") != UNAVAILABLE or channel not in self.wanted:
            return
        attempt = self._attempts.get(channel, 0)
        if attempt >= self.retries:
            self.wanted.discard(channel)
            self._attempts.pop(channel, None)
            self.refused[channel] = frame
            return
        self._attempts[channel] = attempt + 1
        task = asyncio.get_running_loop().create_task(
            self._subscribe_later(ws, channel, backoff(attempt, *self.backoff))
        )
        self._later.add(task)
        task.add_done_callback(self._later.discard)

    async def _subscribe_later(self, ws: ClientConnection, channel: str, delay: float) -> None:
        await asyncio.sleep(delay)
        if self.ws is not ws or channel not in self.wanted:
            return  # reconnected meanwhile (which subscribes every wanted channel) or unsubscribed
        with contextlib.suppress(websockets.ConnectionClosed):  # closed: the reconnect subscribes it
            await ws.send(encode(self._subscribe_request(channel)).decode())

    def _subscribe_request(self, channel: str) -> dict[str, Any]:
        request: dict[str, Any] = {"type": "subscribe", "channel": channel}
        position = self.positions.get(channel)
        if position is not None:
            request.update(epoch=position.epoch, offset=position.offset)
        return request

    async def request(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Send one request and wait for its answer; RequestError when it is an `error`."""
        ws = self.ws
        if ws is None:
            await asyncio.wait_for(self.connected.wait(), REQUEST_TIMEOUT)
            ws = self.ws
        if ws is None:
            raise ConnectionError("not connected")
        rid = next(self._ids)
        future = self._waiting[rid] = asyncio.get_running_loop().create_future()
        await ws.send(encode({"type": kind, "id": rid, **fields}).decode())
        answer = await asyncio.wait_for(future, REQUEST_TIMEOUT)
        if answer.get("type") == "error":
            raise RequestError(answer)
        return dict(answer)

    async def subscribe(self, channel: str) -> dict[str, Any]:
        """Subscribe (resuming from the last offset of `channel` if there is one); the `subscribed`
        frame. Refused as `unavailable`: tried again after a backoff, at most `retries` times."""
        self.wanted.add(channel)
        self.refused.pop(channel, None)
        for attempt in itertools.count():
            request = self._subscribe_request(channel)
            del request["type"]
            try:
                return await self.request("subscribe", **request)
            except RequestError as exc:
                if exc.code != UNAVAILABLE or attempt >= self.retries:
                    self.wanted.discard(channel)
                    raise
            await asyncio.sleep(backoff(attempt, *self.backoff))
        raise AssertionError("unreachable")  # itertools.count() never ends

    async def unsubscribe(self, channel: str) -> dict[str, Any]:
        self.wanted.discard(channel)
        return await self.request("unsubscribe", channel=channel)

    async def publish(self, channel: str, data: Any) -> dict[str, Any]:
        return await self.request("publish", channel=channel, data=data)

    async def send_raw(self, text: str | bytes) -> None:
        """Send a frame as is (tests: malformed and oversized frames)."""
        if self.ws is None:
            raise ConnectionError("not connected")
        await self.ws.send(text)

    async def close(self) -> None:
        for task in [*self._later, *([self._task] if self._task is not None else [])]:
            task.cancel()
        await asyncio.gather(*self._later, *([self._task] if self._task else []), return_exceptions=True)
        self._task = None
        self._stop("closed by the client", None)
