"""`Hub`: the real-time hub of one process. It owns the broker (chosen by URL), the channel fan-out,
the open connections and their heartbeats, and makes the endpoints (`websocket()`, `sse()`).

The broker is made on first use, on the event loop that uses it (connections belong to their loop);
`hub.sync` is the blocking facade for code that is not async.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from perfkit.errors import BackendError
from perfkit.metrics import Collector, default_collector
from perfkit.realtime import protocol as p
from perfkit.realtime.broker import Broker, check_url, create_broker
from perfkit.realtime.config import HubConfig
from perfkit.realtime.connection import Connection
from perfkit.realtime.fanout import Fanout
from perfkit.realtime.health import HubCheck
from perfkit.realtime.metrics import RealtimeMetrics
from perfkit.realtime.outbox import Outbox
from perfkit.realtime.protocol import Position
from perfkit.realtime.security import Access, Auth, Policy
from perfkit.realtime.session import Runtime, Session
from perfkit.realtime.sse import SseEndpoint
from perfkit.realtime.websocket import WebSocketEndpoint, close_quietly

if TYPE_CHECKING:
    from perfkit.realtime.sync import SyncHub

logger = logging.getLogger("perfkit.realtime")
SHUTDOWN_WAIT = 2.0  # seconds `close()` gives connections to end after their close frame
# told of every `publish` as it ends: `listener(channel, seconds, error or None)`, in the publisher's context
PublishListener = Callable[[str, float, BaseException | None], None]
HEALTH_WAIT = 5.0  # seconds a check from another loop waits for the hub's loop to answer


class Hub:
    """`Hub("redis://127.0.0.1:6379/0", batch_window=0.05, latest=["presence:*"])`: see HubConfig."""

    def __init__(
        self, url: str = "memory://", *, collector: Collector | None = None, **settings: Any
    ) -> None:
        self.url = url
        self.config = HubConfig.resolve(**settings)
        self.collector = collector or default_collector()
        self.metrics = RealtimeMetrics(self.collector)
        self.connections: set[Connection] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._runtime: Runtime | None = None
        self._heartbeats: asyncio.Task[None] | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self.outbox = Outbox(self.publish)
        self._sync: SyncHub | None = None
        self._sync_lock = threading.Lock()
        self._all_closed: asyncio.Event | None = None
        self.publish_listeners: list[PublishListener] = []  # shared with siblings (perfkit.otel's spans)
        self._probe: Hub | None = None  # health_anywhere before the hub has a loop
        check_url(url)  # a bad URL or a missing extra fails here, not at the first connection

    # -- the parts, made on first use
    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            self.loop = asyncio.get_running_loop()
            broker: Broker = create_broker(self.url, self.config)
            fanout = Fanout(broker, gap=lambda channel: self.metrics.gaps.inc())
            self._runtime = Runtime(self.config, broker, fanout, self.metrics, self.publish)
        return self._runtime

    async def publish(self, channel: str, data: Any) -> Position:
        """Publish `data` (any JSON value) on `channel` from any process; returns its (epoch, offset)."""
        p.check_channel(channel)
        data_json = p.encode(data).decode()
        start = time.perf_counter()
        try:
            entry = await self.runtime.broker.publish(channel, data_json)
        except BaseException as exc:
            for listener in self.publish_listeners:
                listener(channel, time.perf_counter() - start, exc)
            raise
        for listener in self.publish_listeners:
            listener(channel, time.perf_counter() - start, None)
        self.metrics.published.inc()
        return Position(entry.epoch, entry.offset)

    def add_publish_listener(self, listener: PublishListener) -> None:
        """Also call `listener(channel, seconds, error)` after each publish (error: None or its exception)."""
        if listener not in self.publish_listeners:
            self.publish_listeners.append(listener)

    async def history(self, channel: str, since: int | None = None) -> list[Any]:
        """The `data` of the messages of `channel` after offset `since` still in the history."""
        p.check_channel(channel)
        found = await self.runtime.broker.history(channel, since or 0)
        return [p.decode(e.frame)["data"] for e in found.entries]

    def websocket(
        self, *, auth: Auth | None, can_subscribe: Policy, can_publish: Policy | None = None,
        origins: Sequence[str] | None = None,
    ) -> WebSocketEndpoint:  # fmt: skip
        """The WebSocket endpoint (an ASGI app). `auth(connection) -> user | None` (None refuses; pass
        `auth=None` to open it to anyone), `can_subscribe(user, channel)`, `can_publish` (default: no
        client publishes), `origins` (default: same origin only)."""
        return WebSocketEndpoint(self, Access(auth, can_subscribe, can_publish, origins))

    def sse(
        self, *, auth: Auth | None, can_subscribe: Policy, origins: Sequence[str] | None = None
    ) -> SseEndpoint:
        """The Server-Sent Events endpoint (an ASGI app): `GET ?channel=a&channel=b`, resumes from
        `Last-Event-ID`."""
        return SseEndpoint(self, Access(auth, can_subscribe, None, origins))

    async def serve(
        self, conn: Connection, session: Session, reader: Coroutine[Any, Any, None], initial: Any
    ) -> None:
        """Run one accepted connection until the client leaves or the hub closes it (the endpoints' core).

        This task subscribes and then reads the client (`reader`); the connection's writer runs only
        while it has something to send. A hub-side close (`conn.close`: slow consumer, heartbeat, a send
        past its timeout, shutdown) cancels the reading, and the subscriptions are released here."""
        self.connections.add(conn)
        self.metrics.connected(conn.transport.kind, 1)
        self._start_timers()
        c = self.config
        conn.send_control(
            p.frame(
                "welcome", v=p.VERSION, conn=conn.id, heartbeat=c.heartbeat,
                batch_ms=round(c.batch_window * 1000), max_message=c.max_message,
                transport=conn.transport.kind,
            )
        )  # fmt: skip
        task = asyncio.current_task()
        conn.handler = task
        try:
            channels, resume = initial
            for channel in channels:
                if conn.closing is not None:
                    break
                since = resume.get(channel)
                request = {"type": "subscribe", "channel": channel}
                if since is not None:
                    request.update(epoch=since.epoch, offset=since.offset)
                await session.dispatch(request)
            if conn.closing is None:
                await reader
        except asyncio.CancelledError:
            if not conn.interrupted or task is None or task.uncancel() > 0:
                raise  # not (only) the hub's doing: the server is cancelling this handler
        except Exception:  # a policy or auth function raised: the app's bug, shown
            logger.exception("realtime: connection %s failed", conn.id)
        finally:
            reader.close()  # never started when the connection closed during the subscribes
            conn.handler = None
            conn.closing = conn.closing or (0, "client")
            conn.close(conn.closing)  # stops the writer
            await session.leave_all()
            self.connections.discard(conn)
            self.metrics.connected(conn.transport.kind, -1)
            if not self.connections and self._all_closed is not None:
                self._all_closed.set()
            await close_quietly(conn)

    def _start_timers(self) -> None:
        if self._heartbeats is None or self._heartbeats.done():
            self._heartbeats = asyncio.get_running_loop().create_task(
                self._beat(), name="perfkit-realtime-heartbeat"
            )
        if self._watchdog is None or self._watchdog.done():
            self._watchdog = asyncio.get_running_loop().create_task(
                self._watch_sends(), name="perfkit-realtime-send-watchdog"
            )

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.config.heartbeat)
            now = time.monotonic()
            for conn in list(self.connections):
                if conn.transport.kind == "ws" and now - conn.last_seen > self.config.heartbeat_timeout:
                    conn.close(p.CLOSE_HEARTBEAT)
                else:
                    conn.ping()

    async def _watch_sends(self) -> None:
        """One timer for every connection's `send_timeout` (instead of a timeout per send): a send is
        closed between `send_timeout` and `send_timeout` + one tick (a fifth of it, 50 ms-1 s)."""
        tick = min(1.0, max(0.05, self.config.send_timeout / 5))
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            for conn in list(self.connections):
                if conn.sending:
                    conn.overdue(now)

    # -- fire-and-forget publishing, in order (job events, after-commit hooks)
    def publish_soon(self, channel: str, data: Any) -> None:
        """Publish later, in call order, from the hub's loop; from a thread without a loop, at once
        through `hub.sync`. Failures are logged, never raised (a hook must not break its caller)."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is None:
            try:
                self.sync.publish(channel, data)
            except Exception as exc:
                logger.warning("realtime: publish on %s failed: %s", channel, exc)
            return
        if self.loop is not None and running is not self.loop:
            if self.loop.is_running():
                self.loop.call_soon_threadsafe(self.publish_soon, channel, data)
            else:
                logger.warning("realtime: publish on %s dropped: the hub's event loop has stopped", channel)
            return
        self.runtime  # noqa: B018 -- binds the hub to this loop (the first loop that uses a hub owns it)
        self.outbox.put(running, channel, data)

    async def drain(self) -> None:
        """Wait until every `publish_soon` message so far is published."""
        await self.outbox.drain()

    def follow_jobs(self, queue: Any, channel: str = "job:{id}") -> None:
        """Publish every event of `queue`'s jobs (enqueued, started, progress, succeeded, failed, retried,
        dead, cancelled) on a channel per job, `job:<id>` by default."""
        from perfkit.realtime.integrations import follow_jobs

        follow_jobs(self, queue, channel)

    def follow_invalidations(
        self, invalidator: Any, channel: str = "model:{model}", models: Iterable[str] | None = None
    ) -> Callable[[], None]:
        """Publish `{"model", "rows", "unknown"}` on `model:<Model>` after each commit that changed rows
        `invalidator` (a CacheInvalidator) watches; returns a function that stops it."""
        from perfkit.realtime.bridges import follow_invalidations

        return follow_invalidations(self, invalidator, channel, models)

    def publish_on_commit(self, session: Any, channel: str, data: Any) -> None:
        """Publish `data` on `channel` when `session` (SQLAlchemy, sync or async) commits; not on rollback."""
        from perfkit.realtime.integrations import publish_on_commit

        publish_on_commit(self, session, channel, data)

    # -- health
    async def health(self) -> dict[str, Any]:
        """{"ok", "message", "broker", "connected", "connections", "channels"}; ok False while the
        broker is unreachable or its fan-out link is down with channels subscribed."""
        rt = self.runtime
        channels = len(rt.fanout.channels)
        info: dict[str, Any] = {
            "broker": rt.broker.kind,
            "connections": len(self.connections),
            "channels": channels,
        }
        try:
            await rt.broker.ping()
        except BackendError as exc:
            return {"ok": False, "message": str(exc), "connected": False, **info}
        linked = rt.broker.connected() or channels == 0
        message = f"{rt.broker.kind} broker answered" if linked else "the pub/sub link is down (reconnecting)"
        return {"ok": linked, "message": message, "connected": rt.broker.connected(), **info}

    async def health_anywhere(self) -> dict[str, Any]:
        """`health()` from any event loop: on the hub's own loop when it has one (a monitor that runs
        its checks on another loop, as Django's does on perfkit's background loop, must not bind the
        hub there), else through a probe of the same URL on the calling loop (the hub has served
        nothing yet: only whether its broker answers is known)."""
        running = asyncio.get_running_loop()
        home = self.loop
        if home is None:
            if self._probe is None or self._probe.loop not in (None, running):
                self._probe = self.sibling()
            return await self._probe.health()
        if home is running:
            return await self.health()
        if home.is_closed() or not home.is_running():
            return {"ok": False, "message": "the hub's event loop has stopped", "connected": False}
        answer = asyncio.run_coroutine_threadsafe(self.health(), home)
        try:
            async with asyncio.timeout(HEALTH_WAIT):
                return await asyncio.wrap_future(answer)
        except TimeoutError:
            answer.cancel()
            return {"ok": False, "message": f"the hub's event loop did not answer within {HEALTH_WAIT:g}s"}

    def check(self, name: str = "realtime") -> HubCheck:
        """The readiness check for `MonitorConfig(checks=[hub.check()])`, from any event loop (see
        `health_anywhere`)."""
        return HubCheck(self.health_anywhere, name=name)

    @property
    def sync(self) -> SyncHub:
        """The blocking facade: `hub.sync.publish("user:7", {...})` from code that is not async."""
        if self._sync is None:
            with self._sync_lock:
                if self._sync is None:
                    from perfkit.realtime.sync import SyncHub

                    self._sync = SyncHub(self)
        return self._sync

    def sibling(self) -> Hub:
        """The same URL and settings with its own broker connection, for another event loop."""
        twin = Hub.__new__(Hub)
        twin.__dict__.update(self.__dict__)
        twin.connections, twin.loop, twin._runtime = set(), None, None
        twin._heartbeats = twin._watchdog = twin._sync = twin._probe = None
        twin.outbox = Outbox(twin.publish)
        return twin

    async def close(self) -> None:
        """Close every connection (1012, the clients resume elsewhere), the broker and the sync facade."""
        for conn in list(self.connections):
            conn.close(p.CLOSE_RESTART)
        if self.connections:
            self._all_closed = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(SHUTDOWN_WAIT):
                    await self._all_closed.wait()
            self._all_closed = None
        for timer in (self._heartbeats, self._watchdog):
            if timer is not None:
                timer.cancel()
                with contextlib.suppress(BaseException):
                    await timer
        self._heartbeats = self._watchdog = None
        await self.outbox.close()
        if self._runtime is not None:
            await self._runtime.fanout.close()
            await self._runtime.broker.close()
            self._runtime = None
        if self._sync is not None:
            facade, self._sync = self._sync, None
            await asyncio.to_thread(facade.close)
        probe, self._probe = self._probe, None
        if probe is not None and probe.loop is not None and not probe.loop.is_closed():
            if probe.loop is asyncio.get_running_loop():
                await probe.close()
            elif probe.loop.is_running():
                with contextlib.suppress(Exception):
                    await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(probe.close(), probe.loop))
