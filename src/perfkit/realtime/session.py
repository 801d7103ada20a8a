"""The requests of one connection (docs/realtime.md, "Client -> server"): subscribe with resume,
unsubscribe, publish, ping and pong; each answered with its frame or an `error` with a reason code."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from perfkit.errors import BackendError, InvalidArgumentError, SerializationError
from perfkit.realtime import protocol as p
from perfkit.realtime.broker import Broker, History
from perfkit.realtime.config import HubConfig
from perfkit.realtime.connection import Connection
from perfkit.realtime.fanout import Fanout
from perfkit.realtime.metrics import RealtimeMetrics
from perfkit.realtime.protocol import Entry, Position
from perfkit.realtime.security import Access
from perfkit.web.ratelimit.backend import GcraTable

MAX_ERRORS = 20  # protocol errors before a connection is closed 4400


@dataclass(frozen=True)
class Runtime:
    """What a session needs of its hub (and nothing else of it)."""

    config: HubConfig
    broker: Broker
    fanout: Fanout
    metrics: RealtimeMetrics
    publish: Callable[[str, Any], Awaitable[Position]]


class Host(Protocol):
    """What an endpoint needs of its hub: the runtime (made on first use) and the connection loop."""

    @property
    def runtime(self) -> Runtime: ...

    async def serve(
        self, conn: Connection, session: Session, reader: Coroutine[Any, Any, None], initial: Any
    ) -> None: ...


class Session:
    __slots__ = ("access", "conn", "limiter", "rt")

    def __init__(self, runtime: Runtime, conn: Connection, access: Access, limiter: GcraTable) -> None:
        self.rt, self.conn, self.access, self.limiter = runtime, conn, access, limiter

    def refuse(self, code: str, message: str, request_id: Any = None, **extra: Any) -> None:
        self.conn.send_control(p.error(code, message, request_id, **extra))
        if code in (p.BAD_REQUEST, p.UNKNOWN_TYPE):
            self.conn.errors += 1
            if self.conn.errors > MAX_ERRORS:
                self.conn.close(p.CLOSE_BAD_REQUEST)

    async def handle(self, text: str) -> None:
        """One client frame (already within the size limit)."""
        conn = self.conn
        self.rt.metrics.messages_in.inc()
        decision = self.limiter.hit_sync(conn.id, self.rt.config.rate_limit)
        if not decision.allowed:
            self.rt.metrics.refused.inc(("rate_limited",))
            self.refuse(p.RATE_LIMITED, "too many messages", retry_after=round(decision.retry_after, 3))
            return
        try:
            request = p.decode(text)
        except Exception:
            self.refuse(p.BAD_REQUEST, "not JSON")
            return
        if not isinstance(request, dict) or not isinstance(request.get("type"), str):
            self.refuse(p.BAD_REQUEST, 'a request is a JSON object with a "type"')
            return
        await self.dispatch(request)

    async def dispatch(self, request: dict[str, Any]) -> None:
        kind, rid = request["type"], request.get("id")
        if kind == "pong":
            self.conn.pong(request.get("t"))
        elif kind == "ping":
            self.conn.send_control(p.frame("pong", t=request.get("t")))
        elif kind in ("subscribe", "unsubscribe", "publish"):
            try:
                channel = p.check_channel(request.get("channel"))
            except InvalidArgumentError as exc:
                self.refuse(p.BAD_REQUEST, str(exc), rid)
                return
            if kind == "subscribe":
                await self.subscribe(channel, self.since(request), rid)
            elif kind == "unsubscribe":
                await self.unsubscribe(channel, rid)
            else:
                await self.publish(channel, request.get("data"), rid)
        else:
            self.refuse(p.UNKNOWN_TYPE, f"unknown request type {kind!r}", rid)

    @staticmethod
    def since(request: dict[str, Any]) -> Position | None:
        epoch, offset = request.get("epoch"), request.get("offset")
        if (
            isinstance(epoch, str)
            and isinstance(offset, int)
            and not isinstance(offset, bool)
            and offset >= 0
        ):
            return Position(epoch, offset)
        return None

    async def subscribe(self, channel: str, since: Position | None, rid: Any = None) -> None:
        conn = self.conn
        if channel in conn.channels:
            await self.leave(channel)
        if len(conn.channels) >= self.rt.config.max_channels:
            self.refuse(
                p.TOO_MANY_CHANNELS, f"at most {self.rt.config.max_channels} channels", rid, channel=channel
            )
            return
        if not await self.access.may_subscribe(conn.user, channel):
            self.rt.metrics.refused.inc(("forbidden",))
            self.refuse(p.FORBIDDEN, f"not allowed to subscribe to {channel!r}", rid, channel=channel)
            return
        conn.replaying[channel] = []
        conn.channels.add(channel)
        if self.rt.config.is_latest(channel):
            conn.set_latest(channel, True)
        try:
            await self.rt.fanout.join(channel, conn)
            history = await self.history(channel, since)
        except BackendError as exc:
            await self.leave(channel)
            self.refuse(p.UNAVAILABLE, f"cannot subscribe now: {exc}", rid, channel=channel)
            return
        held = conn.replaying.pop(channel, [])
        start = Position(history.epoch, history.offset)
        replay: list[Entry] = []
        reason = None
        if since is not None:
            if since.epoch != history.epoch:
                reason = p.EPOCH_CHANGED
            elif not history.complete:
                reason = p.OUT_OF_HISTORY
            else:
                start, replay = since, history.entries
        conn.positions[channel] = conn.sent[channel] = start
        latest = channel in conn.latest
        conn.send_control(
            p.frame("subscribed", id=rid, channel=channel, epoch=start.epoch, offset=start.offset,
                    latest=latest, replayed=len(replay)),
            positioned=True,
        )  # fmt: skip
        if reason is not None:
            conn.send_control(p.resync(channel, start, reason), positioned=True)
        for entry in replay:
            conn.push(channel, entry)
        for entry in held:
            conn.push(channel, entry)

    async def history(self, channel: str, since: Position | None) -> History:
        """What a new subscriber of `channel` starts from. Without a read where the process already
        knows: its fan-out's position (every message after it reaches the connection, which joined
        it), for a client without an offset or one that is up to date; else a history read (which
        concurrent subscribers resuming from the same offset share: see the Redis broker)."""
        here = self.rt.fanout.position(channel)
        if here is not None and (since is None or since == here):
            return History(here.epoch, here.offset, [], True)
        return await self.rt.broker.history(channel, None if since is None else since.offset)

    async def leave(self, channel: str) -> None:
        conn = self.conn
        conn.channels.discard(channel)
        if channel in conn.latest:
            conn.set_latest(channel, False)
        conn.replaying.pop(channel, None)
        conn.positions.pop(channel, None)
        conn.sent.pop(channel, None)
        await self.rt.fanout.leave(channel, conn)

    async def unsubscribe(self, channel: str, rid: Any = None) -> None:
        if channel not in self.conn.channels:
            self.refuse(p.NOT_SUBSCRIBED, f"not subscribed to {channel!r}", rid, channel=channel)
            return
        await self.leave(channel)
        self.conn.send_control(p.frame("unsubscribed", id=rid, channel=channel))

    async def publish(self, channel: str, data: Any, rid: Any = None) -> None:
        if not await self.access.may_publish(self.conn.user, channel):
            self.rt.metrics.refused.inc(("publish_forbidden",))
            self.refuse(p.FORBIDDEN, f"not allowed to publish on {channel!r}", rid, channel=channel)
            return
        try:
            entry = await self.rt.publish(channel, data)
        except BackendError as exc:
            self.refuse(p.UNAVAILABLE, f"cannot publish now: {exc}", rid, channel=channel)
            return
        except SerializationError as exc:
            self.refuse(p.BAD_REQUEST, str(exc), rid, channel=channel)
            return
        self.conn.send_control(
            p.frame("published", id=rid, channel=channel, epoch=entry.epoch, offset=entry.offset)
        )

    async def leave_all(self) -> None:
        for channel in list(self.conn.channels):
            await self.leave(channel)
        self.limiter.tats.pop(self.conn.id, None)
