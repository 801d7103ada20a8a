"""The Redis broker: history and offsets in Lua (`lua/publish.lua`, `lua/history.lua`), fan-out over
pub/sub on one connection per process (`perfkit.realtime.link`), rebuilt with backoff after Redis goes
away. `perfkit.realtime.cluster` is the same broker on a Redis Cluster.

Key names live here and nowhere else: per channel `c`, `<prefix>{c}:meta` (epoch, offset) and
`<prefix>{c}:h` (the history), and the pub/sub channel `<prefix>{c}` (the braces keep a channel's
keys and its pub/sub channel in one cluster slot).

Commands (publish, history reads) take one of `POOL` connections; a burst (a storm of subscribes)
waits its turn in a queue instead of being refused; the history reads of one turn of the event loop
go out in one pipeline, once per channel and offset. While Redis is unreachable the queue fails at
once instead of making each one wait.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from perfkit.backends import BackendURL
from perfkit.errors import BackendUnavailableError
from perfkit.realtime.broker import Deliver, History, Resumed, new_epoch, select
from perfkit.realtime.config import HubConfig
from perfkit.realtime.link import Link
from perfkit.realtime.protocol import Entry, encode
from perfkit.redisclient import ClientOptions, ErrorPolicy, Translator, close_client, is_outage, make_client
from perfkit.redisclient.scripts import lua_script

logger = logging.getLogger("perfkit.realtime")

PUBLISH_LUA = lua_script("perfkit.realtime", "publish")
HISTORY_LUA = lua_script("perfkit.realtime", "history")
ERRORS = ErrorPolicy(
    unavailable="realtime Redis at {where} unavailable: {exc}", failed="realtime Redis {where}: {exc}"
)
TIMEOUT = 2.0  # seconds for a command (publish, history, ping), once it has a connection
QUEUE_WAIT = 30.0  # seconds a command waits for one of the POOL connections before it is refused
POOL = 4  # command connections per process (per node on a cluster)
BATCH = 200  # history reads per pipeline
PUBSUB_OPTIONS = ClientOptions(socket_timeout=None, connect_timeout=TIMEOUT, no_retries=True)


ReadKey = tuple[str, int | None]  # (channel, since)
Read = tuple[list[str], list[Any], "asyncio.Future[Any]"]  # (keys, args, its answer)


def _parse(epoch: str, raw: bytes | str) -> Entry:
    """An entry of the history list or (after its epoch) of a pub/sub payload: `<offset>:<ms>:<frame>`."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    offset, ms, frame = text.split(":", 2)
    return Entry(epoch, int(offset), int(ms) / 1000, frame)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisBroker:
    kind = "redis"
    publish_command = "PUBLISH"  # the cluster broker's is SPUBLISH (sharded pub/sub)

    def __init__(self, url: BackendURL, *, config: HubConfig, **_: Any) -> None:
        self.url = url
        self.config = config
        self.prefix = url.options.get("prefix", config.prefix)
        self.translate = Translator(url.redacted(), ERRORS)
        # a small pool and a queue in front of it: Redis runs the scripts one at a time anyway, and the
        # number of sockets a process holds must not grow with its connections
        options = ClientOptions(
            socket_timeout=TIMEOUT, connect_timeout=TIMEOUT, no_retries=True, errors=ERRORS,
            max_connections=POOL, own=("prefix",),
        )  # fmt: skip
        self.client = make_client(url, options)
        self.slots = asyncio.Semaphore(POOL)
        self.batch: dict[ReadKey, Read] = {}  # history reads to send, by (channel, since)
        self.flusher: asyncio.Task[None] | None = None
        self.reachable = True  # False after a command found Redis unreachable, until one succeeds
        self.publish_script = self.client.register_script(PUBLISH_LUA)
        self.history_script = self.client.register_script(HISTORY_LUA)
        self.channels: set[str] = set()  # what the hub wants subscribed
        self._deliver: Deliver | None = None
        self._resumed: Resumed | None = None
        self.links: dict[str, Link] = {}  # one per node, by name
        self.retired: list[Link] = []  # links of nodes that left the cluster, closed with the broker

    def link_to(self, name: str, url: BackendURL) -> Link:
        """The pub/sub link to node `name`, made on first use; its reads wait as long as there is nothing
        to read (get_message has its own timeout)."""
        link = self.links.get(name)
        if link is None:
            client = make_client(url, PUBSUB_OPTIONS)
            sharded = self.publish_command == "SPUBLISH"
            link = self.links[name] = Link(client, self, sharded=sharded, where=name)
        return link

    def bind(self, deliver: Deliver, resumed: Resumed) -> None:
        self._deliver, self._resumed = deliver, resumed

    def _keys(self, channel: str) -> list[str]:
        return [f"{self.prefix}{{{channel}}}:meta", f"{self.prefix}{{{channel}}}:h"]

    def topic(self, channel: str) -> str:
        return f"{self.prefix}{{{channel}}}"

    def channel_of(self, topic: str) -> str:
        return topic[len(self.prefix) + 1 : -1]

    async def run(self, call: Callable[[], Awaitable[Any]]) -> Any:
        """`call()` on one of the POOL connections, waiting for one in the queue; driver errors
        translated, Redis unreachable: refused at once."""
        try:
            async with asyncio.timeout(QUEUE_WAIT):
                await self.slots.acquire()
        except TimeoutError as exc:
            raise BackendUnavailableError(
                f"realtime Redis at {self.translate.where}: no connection free within {QUEUE_WAIT:g}s"
            ) from exc
        try:
            if not self.reachable and not self.connected():  # an outage: fail now, not one timeout each
                raise BackendUnavailableError(f"realtime Redis at {self.translate.where} unavailable")
            async with asyncio.timeout(TIMEOUT):
                found = await call()
            self.reachable = True
            return found
        except BackendUnavailableError:
            raise
        except Exception as exc:
            if is_outage(exc) and not isinstance(exc, TimeoutError):
                self.reachable = False
            self.translate.reraise(exc)
        finally:
            self.slots.release()

    async def _read(self, key: ReadKey, keys: list[str], args: list[Any]) -> Any:
        """Run the history script with the other reads asked for in the same turn of the loop: in one
        pipeline (a storm of subscribes to different channels: one write and one round trip per batch,
        not per channel), and once for readers of the same channel and offset. Only readers that ask
        before the batch is sent share it: a read already sent may predate a message that a reader
        who joined the channel's fan-out later has not received."""
        queued = self.batch.get(key)
        if queued is None:
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self.batch[key] = (keys, args, future)
            if self.flusher is None or self.flusher.done():
                self.flusher = asyncio.get_running_loop().create_task(self._flush())
        else:
            future = queued[2]
        return await asyncio.shield(future)

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # the reads asked for in this turn of the loop join the batch
        while self.batch:
            items = [self.batch.pop(key) for key in list(self.batch)[:BATCH]]
            replies: list[Any] = []
            try:
                replies = await self._send_reads(items)
            except Exception as exc:
                replies = [exc] * len(items)
            finally:
                if not replies:  # cancelled (the broker closes): nobody waits for ever
                    for *_, future in items:
                        future.cancel()
            for (_, _, future), reply in zip(items, replies, strict=True):
                if future.done():
                    continue
                if isinstance(reply, Exception):
                    future.set_exception(self.translate(reply))
                    future.exception()  # retrieved: its readers (if any are left) re-raise it
                elif isinstance(reply, BaseException):
                    future.cancel()
                else:
                    future.set_result(reply)

    async def _send_reads(self, items: list[Read]) -> list[Any]:
        """The replies (or errors) of a batch of reads, in order: one node, one pipeline."""
        return list(await self.run(functools.partial(self._pipeline, items)))

    async def _pipeline(self, items: list[Read]) -> list[Any]:
        async with self.client.pipeline(transaction=False) as pipe:
            for keys, args, _ in items:
                await self.history_script(keys=keys, args=args, client=pipe)
            return list(await pipe.execute(raise_on_error=False))

    async def publish(self, channel: str, data_json: str) -> Entry:
        c = self.config
        args = [
            encode(channel).decode(), data_json, c.history_size, int(c.history_ttl * 1000),
            int(c.meta_ttl * 1000), self.topic(channel), new_epoch(), self.publish_command,
        ]  # fmt: skip
        keys = self._keys(channel)
        epoch, offset, ms = await self.run(lambda: self.publish_script(keys=keys, args=args))
        return Entry(_text(epoch), int(offset), int(ms) / 1000, "")  # the frame goes out by pub/sub

    async def history(self, channel: str, since: int | None) -> History:
        args = [-1 if since is None else since, new_epoch(), int(self.config.meta_ttl * 1000)]
        raw_epoch, last, now_ms, raw = await self._read((channel, since), self._keys(channel), args)
        epoch = _text(raw_epoch)
        entries = [_parse(epoch, item) for item in raw]
        kept, complete = select(entries, since, int(last), int(now_ms) / 1000, self.config.history_ttl)
        return History(epoch, int(last), kept, complete)

    async def _link_for(self, channel: str) -> Link:
        """The link that carries `channel` (one node: its only link)."""
        return self.link_to(self.url.redacted(), self.url)

    async def subscribe(self, channel: str) -> None:
        self.channels.add(channel)
        try:
            link = await self._link_for(channel)
            await link.subscribe(self.topic(channel))
        except Exception as exc:
            self.channels.discard(channel)
            self.translate.reraise(exc)

    async def unsubscribe(self, channel: str) -> None:
        self.channels.discard(channel)
        for link in self._links():
            if self.topic(channel) in link.topics:
                await link.unsubscribe(self.topic(channel))

    def _links(self) -> list[Link]:
        return list(self.links.values())

    async def ping(self) -> None:
        try:
            async with asyncio.timeout(TIMEOUT):
                await self.client.ping()
        except Exception as exc:
            self.translate.reraise(exc)

    def connected(self) -> bool:
        return all(link.up for link in self._links() if link.reader is not None)

    @property
    def reconnects(self) -> int:
        return sum(link.reconnects for link in self._links())

    # -- the links' owner
    def message(self, topic: str, payload: bytes | str) -> None:
        epoch, _, rest = _text(payload).partition(":")
        if self._deliver is not None:
            self._deliver(self.channel_of(topic), _parse(epoch, rest))

    def came_back(self, link: Link) -> None:
        self.reachable = True
        if self._resumed is not None:
            self._resumed()

    async def unreachable(self, link: Link) -> bool:
        self.reachable = False
        return True  # one node: keep trying it

    def dropped(self, link: Link, topic: str) -> None:
        link.adopt(topic)  # one node: it can only have been a restart; hold it again

    async def close(self) -> None:
        if self.flusher is not None:
            self.flusher.cancel()
            await asyncio.gather(self.flusher, return_exceptions=True)
        for *_, future in self.batch.values():
            future.cancel()
        for link in [*self._links(), *self.retired]:
            await link.close()
            await close_client(link.client)
        await close_client(self.client)
