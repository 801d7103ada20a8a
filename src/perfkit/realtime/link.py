"""`Link`: one pub/sub connection to one Redis node, rebuilt with backoff after it drops.

It holds a set of topics (what its owner wants subscribed on that node), subscribes them again on every
reconnect, and confirms each new subscribe once the node said so. Classic pub/sub (`SUBSCRIBE`, one
node) or sharded (`SSUBSCRIBE`, a Redis Cluster shard). The owner (a broker) is told about each
message, each reconnect after a drop (to fill the gap from the history), each failed reconnect (a
cluster broker then looks whether the node's slots moved) and each topic the node dropped by itself
(a sharded subscription whose slot moved to another node).
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any, Protocol

from redis.asyncio.client import PubSub

logger = logging.getLogger("perfkit.realtime")
BACKOFF = (0.05, 2.0)  # first and longest wait between reconnects
STEADY = 1.0  # seconds a link must last for the next reconnect to start from the shortest wait
CONFIRM = 2.0  # seconds an unsubscribe waits for the node
BUSY = 30.0  # seconds a subscribe waits for a link being connected, then for the node's confirmation


class Owner(Protocol):
    def message(self, topic: str, payload: bytes | str) -> None: ...

    def came_back(self, link: Link) -> None:
        """The link is up again after a drop: what was published meanwhile is only in the history."""

    async def unreachable(self, link: Link) -> bool:
        """The link dropped or a reconnect failed (the node may be gone for good: its topics may belong
        elsewhere now). False: stop the link (it holds nothing the owner still wants)."""

    def dropped(self, link: Link, topic: str) -> None:
        """The node ended a subscription the owner did not end (its slot moved)."""


class Link:
    def __init__(self, client: Any, owner: Owner, *, sharded: bool, where: str) -> None:
        self.client, self.owner, self.sharded, self.where = client, owner, sharded, where
        self.topics: set[str] = set()
        self.waiting: dict[str, asyncio.Future[None]] = {}
        self.pubsub: PubSub | None = None
        self.reader: asyncio.Task[None] | None = None
        self.up = False
        self.failing = False  # the last connect failed: subscribes are refused at once until one works
        self.attempts = asyncio.Condition()  # notified after each connect attempt
        self.reconnects = 0
        self.tasks: set[asyncio.Task[None]] = set()
        self.outgoing: set[str] = set()  # subscribes to send in the next command
        self.sender: asyncio.Task[None] | None = None
        self.unsubscribing: set[str] = set()  # our own unsubscribes, whose confirmations are not drops
        kinds = ("message", "subscribe", "unsubscribe")
        self.kind_message, self.kind_subscribe, self.kind_unsubscribe = (
            ("s" + k for k in kinds) if sharded else kinds
        )

    def start(self) -> None:
        if self.reader is None or self.reader.done():
            self.reader = asyncio.get_running_loop().create_task(
                self._read_forever(), name=f"perfkit-realtime-pubsub-{self.where}"
            )

    async def subscribe(self, topic: str) -> None:
        """Returns once messages of `topic` published from now on reach the owner; raises a driver
        error or TimeoutError (the caller translates it) when the node cannot confirm in time."""
        self.start()
        self.topics.add(topic)
        self.unsubscribing.discard(topic)
        try:
            if not self.up:  # the first subscribe waits for the link; node down: unavailable, at once
                async with asyncio.timeout(BUSY), self.attempts:
                    await self.attempts.wait_for(lambda: self.up or self.failing)
                if not self.up:
                    raise ConnectionError(f"Redis pub/sub at {self.where} is unreachable (reconnecting)")
            future = self.waiting.get(topic)
            if future is None or future.done():
                future = self.waiting[topic] = asyncio.get_running_loop().create_future()
            if self.pubsub is None:
                raise ConnectionError("the pub/sub link dropped")
            self.outgoing.add(topic)
            if self.sender is None or self.sender.done():
                self.sender = asyncio.get_running_loop().create_task(self._send_outgoing())
            # confirmed: every later publish of the topic arrives. A busy node (a storm of subscribes)
            # is waited for; a link that drops fails the wait at once (see `_fail_waiting`)
            async with asyncio.timeout(BUSY):
                await asyncio.shield(future)
        except BaseException:
            self.topics.discard(topic)
            self.waiting.pop(topic, None)
            raise

    async def _attempted(self) -> None:
        async with self.attempts:
            self.attempts.notify_all()

    def _fail_waiting(self) -> None:
        """The link dropped: the subscribes waiting for a confirmation fail now (`unavailable`)."""
        waiting, self.waiting = self.waiting, {}
        for future in waiting.values():
            if not future.done():
                future.set_exception(ConnectionError(f"the pub/sub link to {self.where} dropped"))
                future.exception()  # retrieved: its subscribe re-raises it

    async def _send_outgoing(self) -> None:
        """The subscribes asked for in one turn of the loop, in one command (a storm of subscribes to
        different channels: one write, not one per channel)."""
        await asyncio.sleep(0)
        while self.outgoing:
            topics = sorted(self.outgoing)
            self.outgoing.clear()
            try:
                if self.pubsub is None:
                    raise ConnectionError("the pub/sub link dropped")
                await self._send(self.pubsub, topics)
            except Exception as exc:
                for topic in topics:
                    future = self.waiting.get(topic)
                    if future is not None and not future.done():
                        future.set_exception(exc)
                        future.exception()  # retrieved: its subscribe re-raises it

    def adopt(self, topic: str) -> None:
        """Hold `topic` from now on (it moved here from another node's link); once the node confirms it,
        the owner is told the link `came_back`, to fill from the history what the move missed."""
        self.topics.add(topic)
        self.unsubscribing.discard(topic)
        task = asyncio.get_running_loop().create_task(self._adopt(topic))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _adopt(self, topic: str) -> None:
        try:
            await self.subscribe(topic)
        except Exception:  # down: the reconnect subscribes every topic the link holds, then fills
            logger.debug("realtime: subscribing moved %s on %s failed", topic, self.where, exc_info=True)
            self.topics.add(topic)
            return
        self.owner.came_back(self)

    def release(self, topic: str) -> None:
        """Stop holding `topic` (moved away): the next reconnect does not subscribe it."""
        self.topics.discard(topic)
        self.waiting.pop(topic, None)

    async def unsubscribe(self, topic: str) -> None:
        self.release(topic)
        if self.up and self.pubsub is not None:
            self.unsubscribing.add(topic)
            try:
                async with asyncio.timeout(CONFIRM):
                    if self.sharded:
                        await self.pubsub.sunsubscribe(topic)
                    else:
                        await self.pubsub.unsubscribe(topic)
            except Exception:  # the link is going down: the reconnect subscribes only what is wanted
                logger.debug("realtime: unsubscribe from %s failed", topic, exc_info=True)

    async def _send(self, pubsub: PubSub, topics: list[str]) -> None:
        if self.sharded:
            await pubsub.ssubscribe(*topics)
        else:
            await pubsub.subscribe(*topics)

    async def _connect(self) -> PubSub:
        pubsub: PubSub = self.client.pubsub()
        await pubsub.ping()  # connects (PubSub connects on its first command)
        if self.topics:
            await self._send(pubsub, sorted(self.topics))
        return pubsub

    async def _read_forever(self) -> None:
        delay = BACKOFF[0]
        first = True
        while True:
            try:
                self.pubsub = await self._connect()
            except Exception as exc:
                self.failing = True
                await self._attempted()
                logger.warning("realtime: Redis pub/sub at %s unavailable (%s); retrying", self.where, exc)
                if not await self.owner.unreachable(self):
                    return
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(BACKOFF[1], delay * 2)
                continue
            self.up, self.failing = True, False
            await self._attempted()
            since = asyncio.get_running_loop().time()
            if not first:
                self.reconnects += 1
                self.owner.came_back(self)  # fill what was published while the link was down
            first = False
            try:
                await self._read(self.pubsub)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("realtime: Redis pub/sub link to %s lost (%s); reconnecting", self.where, exc)
            finally:
                self.up = False
                self._fail_waiting()
                await self._drop(self.pubsub)
                self.pubsub = None
            if not await self.owner.unreachable(self):
                return
            if asyncio.get_running_loop().time() - since > STEADY:
                delay = BACKOFF[0]
            # a link that drops at once must not spin: the wait grows until a link lasts a while
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(BACKOFF[1], delay * 2)

    async def _read(self, pubsub: PubSub) -> None:
        while True:
            message = await pubsub.get_message(timeout=1.0)
            if message is None:
                continue
            kind, raw = message["type"], message.get("channel")
            if raw is None:
                continue  # the connect's pong
            topic = raw.decode() if isinstance(raw, bytes) else raw
            if kind == self.kind_message:
                self.owner.message(topic, message["data"])
            elif kind == self.kind_subscribe:
                future = self.waiting.pop(topic, None)
                if future is not None and not future.done():
                    future.set_result(None)
            elif kind == self.kind_unsubscribe:
                if topic in self.unsubscribing:
                    self.unsubscribing.discard(topic)
                elif topic in self.topics:  # the node ended it: its slot moved (failover, resharding)
                    self.release(topic)
                    self.owner.dropped(self, topic)

    async def _drop(self, pubsub: PubSub | None) -> None:
        if pubsub is None:
            return
        try:
            await pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
        except Exception:
            logger.debug("realtime: closing the pub/sub link failed", exc_info=True)

    async def close(self) -> None:
        if self.sender is not None:
            self.tasks.add(self.sender)
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.reader is not None:
            self.reader.cancel()
            await asyncio.gather(self.reader, return_exceptions=True)
            self.reader = None
        await self._drop(self.pubsub)
        self.pubsub = None
        self.up = False
