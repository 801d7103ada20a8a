"""The Redis broker: history and offsets in Lua (`lua/publish.lua`, `lua/history.lua`), fan-out over
pub/sub on one connection per process, rebuilt with backoff after Redis goes away.

Key names live here and nowhere else: per channel `c`, `<prefix>{c}:meta` (epoch, offset) and
`<prefix>{c}:h` (the history), and the pub/sub channel `<prefix>{c}` (the braces keep a channel's
keys in one cluster slot, for the day `redis+cluster://` is supported).
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

from redis.asyncio.client import PubSub

from perfkit.backends import BackendURL
from perfkit.errors import ConfigurationError
from perfkit.realtime.broker import Deliver, History, Resumed, new_epoch, select
from perfkit.realtime.config import HubConfig
from perfkit.realtime.protocol import Entry, encode
from perfkit.redisclient import ClientOptions, ErrorPolicy, Translator, close_client, is_cluster, make_client
from perfkit.redisclient.scripts import lua_script

logger = logging.getLogger("perfkit.realtime")

PUBLISH_LUA = lua_script("perfkit.realtime", "publish")
HISTORY_LUA = lua_script("perfkit.realtime", "history")
ERRORS = ErrorPolicy(
    unavailable="realtime Redis at {where} unavailable: {exc}", failed="realtime Redis {where}: {exc}"
)
TIMEOUT = 2.0  # seconds for a command (publish, history, ping)
POOL = 4  # command connections per process
BACKOFF = (0.05, 2.0)  # first and longest wait between pub/sub reconnects


def _parse(epoch: str, raw: bytes | str) -> Entry:
    """An entry of the history list or (after its epoch) of a pub/sub payload: `<offset>:<ms>:<frame>`."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    offset, ms, frame = text.split(":", 2)
    return Entry(epoch, int(offset), int(ms) / 1000, frame)


class RedisBroker:
    kind = "redis"

    def __init__(self, url: BackendURL, *, config: HubConfig, **_: Any) -> None:
        if is_cluster(url):
            raise ConfigurationError(
                "url", f"{url.redacted()!r}: the realtime hub does not support Redis Cluster yet"
            )
        self.config = config
        self.prefix = url.options.get("prefix", config.prefix)
        self.translate = Translator(url.redacted(), ERRORS)
        # a small pool that makes a burst wait: Redis runs the scripts one at a time anyway, and the number
        # of sockets a process holds must not grow with its connections (subscribes read the history)
        options = ClientOptions(
            socket_timeout=TIMEOUT, connect_timeout=TIMEOUT, no_retries=True, errors=ERRORS,
            max_connections=POOL, pool_wait=TIMEOUT,
        )  # fmt: skip
        self.client = make_client(url, options)
        # the pub/sub link: reads wait as long as there is nothing to read (get_message has its own timeout)
        self.link = make_client(
            url, ClientOptions(socket_timeout=None, connect_timeout=TIMEOUT, no_retries=True)
        )
        self.publish_script = self.client.register_script(PUBLISH_LUA)
        self.history_script = self.client.register_script(HISTORY_LUA)
        self.pubsub: PubSub | None = None
        self.channels: set[str] = set()  # what the hub wants subscribed
        self.waiting: dict[str, asyncio.Future[None]] = {}  # subscribe confirmations
        self.reader: asyncio.Task[None] | None = None
        self.up = False
        self.link_up = asyncio.Event()
        self.reconnects = 0
        self._deliver: Deliver | None = None
        self._resumed: Resumed | None = None

    def bind(self, deliver: Deliver, resumed: Resumed) -> None:
        self._deliver, self._resumed = deliver, resumed

    def _keys(self, channel: str) -> list[str]:
        return [f"{self.prefix}{{{channel}}}:meta", f"{self.prefix}{{{channel}}}:h"]

    def _topic(self, channel: str) -> str:
        return f"{self.prefix}{{{channel}}}"

    async def _run(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        try:
            async with asyncio.timeout(TIMEOUT):
                return await script(keys=keys, args=args)
        except Exception as exc:
            self.translate.reraise(exc)

    async def publish(self, channel: str, data_json: str) -> Entry:
        c = self.config
        args = [
            encode(channel).decode(), data_json, c.history_size, int(c.history_ttl * 1000),
            int(c.meta_ttl * 1000), self._topic(channel), new_epoch(),
        ]  # fmt: skip
        epoch, offset, ms = await self._run(self.publish_script, self._keys(channel), args)
        epoch = epoch.decode() if isinstance(epoch, bytes) else epoch
        return Entry(epoch, int(offset), int(ms) / 1000, "")  # the frame reaches subscribers by pub/sub

    async def history(self, channel: str, since: int | None) -> History:
        args = [-1 if since is None else since, new_epoch(), int(self.config.meta_ttl * 1000)]
        raw_epoch, last, now_ms, raw = await self._run(self.history_script, self._keys(channel), args)
        epoch = raw_epoch.decode() if isinstance(raw_epoch, bytes) else raw_epoch
        entries = [_parse(epoch, item) for item in raw]
        kept, complete = select(entries, since, int(last), int(now_ms) / 1000, self.config.history_ttl)
        return History(epoch, int(last), kept, complete)

    async def subscribe(self, channel: str) -> None:
        self._start()
        try:
            async with asyncio.timeout(TIMEOUT):
                await self.link_up.wait()  # the first subscribe waits for the link; Redis down: unavailable
                self.channels.add(channel)
                future = self.waiting.setdefault(channel, asyncio.get_running_loop().create_future())
                if self.pubsub is None:
                    raise ConnectionError("the pub/sub link dropped")
                await self.pubsub.subscribe(self._topic(channel))
                await future  # confirmed: every later publish of the channel reaches this process
        except Exception as exc:
            self.channels.discard(channel)
            self.waiting.pop(channel, None)
            self.translate.reraise(exc)

    async def unsubscribe(self, channel: str) -> None:
        self.channels.discard(channel)
        self.waiting.pop(channel, None)
        if self.up and self.pubsub is not None:
            try:
                async with asyncio.timeout(TIMEOUT):
                    await self.pubsub.unsubscribe(self._topic(channel))
            except Exception:  # the link is going down: the reconnect subscribes only what is wanted
                logger.debug("realtime: unsubscribe from %s failed", channel, exc_info=True)

    async def ping(self) -> None:
        try:
            async with asyncio.timeout(TIMEOUT):
                await self.client.ping()
        except Exception as exc:
            self.translate.reraise(exc)

    def connected(self) -> bool:
        return self.up

    def _start(self) -> None:
        if self.reader is None or self.reader.done():
            self.reader = asyncio.get_running_loop().create_task(
                self._read_forever(), name="perfkit-realtime-pubsub"
            )

    async def _connect(self) -> PubSub:
        pubsub: PubSub = self.link.pubsub()
        await pubsub.ping()  # connects (PubSub connects on its first command)
        topics = [self._topic(c) for c in self.channels]
        if topics:
            await pubsub.subscribe(*topics)
        return pubsub

    async def _read_forever(self) -> None:
        delay = BACKOFF[0]
        first = True
        while True:
            try:
                self.pubsub = await self._connect()
            except Exception as exc:
                logger.warning("realtime: Redis pub/sub unavailable (%s); retrying in %.2fs", exc, delay)
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(BACKOFF[1], delay * 2)
                continue
            self.up, delay = True, BACKOFF[0]
            self.link_up.set()
            if not first:
                self.reconnects += 1
                if self._resumed is not None:
                    self._resumed()  # fill what was published while the link was down
            first = False
            try:
                await self._read(self.pubsub)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("realtime: Redis pub/sub link lost (%s); reconnecting", exc)
            finally:
                self.up = False
                self.link_up.clear()
                await self._drop(self.pubsub)
                self.pubsub = None
            await asyncio.sleep(delay * (0.5 + random.random()))  # a link that drops at once must not spin

    async def _read(self, pubsub: PubSub) -> None:
        while True:
            message = await pubsub.get_message(timeout=1.0)
            if message is None:
                continue
            kind, topic = message["type"], message.get("channel")
            if kind not in ("message", "subscribe") or topic is None:
                continue  # the connect's pong, unsubscribe confirmations
            name = topic.decode() if isinstance(topic, bytes) else topic
            channel = name[len(self.prefix) + 1 : -1]
            if kind == "message":
                payload = message["data"]
                text = payload.decode() if isinstance(payload, bytes) else payload
                epoch, _, rest = text.partition(":")
                if self._deliver is not None:
                    self._deliver(channel, _parse(epoch, rest))
            elif kind == "subscribe":
                future = self.waiting.pop(channel, None)
                if future is not None and not future.done():
                    future.set_result(None)

    async def _drop(self, pubsub: PubSub | None) -> None:
        if pubsub is None:
            return
        try:
            await pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
        except Exception:
            logger.debug("realtime: closing the pub/sub link failed", exc_info=True)

    async def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
            await asyncio.gather(self.reader, return_exceptions=True)
            self.reader = None
        await close_client(self.client)
        await close_client(self.link)
