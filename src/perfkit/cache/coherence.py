"""Keeping every process's L1 coherent with the shared L2.

Redis: client-side tracking in broadcast mode. One connection per cache subscribes to
`__redis__:invalidate` and asks Redis to report every change under the namespace prefix, whoever made
it (another perfkit process, a script, an expiry), so writers pay nothing. Until that subscription is
live, and whenever it drops, the L1 is emptied and bypassed: a process never serves an L1 copy it could
not have heard about.

SQLite: the backend's change log, read at most every `interval` seconds before an L1 lookup;
`PRAGMA data_version` makes the common "nobody wrote" case one cheap statement.

Both guard the fill race: a reader that fetched a value from L2 does not copy it into L1 if an
invalidation for that key arrived while it was reading.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from typing import Any, Protocol

from perfkit.backends import BackendURL
from perfkit.cache.backends.memory import MemoryBackend
from perfkit.errors import BackendError

log = logging.getLogger("perfkit.cache")
_RECENT = 4096


class Coherence(Protocol):
    ready: bool
    polls: bool  # True: `poll()` must run before every L1 lookup (else it is a no-op)

    def poll(self, force: bool = False) -> None: ...

    def invalidated(self, key: str | None) -> None: ...

    def start(self) -> None: ...

    def token(self) -> int: ...

    def may_fill(self, key: str, token: int) -> bool: ...

    async def close(self) -> None: ...


class _FillGuard:
    """Remembers the last invalidation of recently invalidated keys, so a late fill can be refused."""

    def __init__(self) -> None:
        self._seq = 0
        self._floor = 0
        self._recent: OrderedDict[str, int] = OrderedDict()

    def token(self) -> int:
        return self._seq

    def invalidated(self, key: str | None) -> None:
        self._seq += 1
        if key is None:  # everything
            self._floor = self._seq
            self._recent.clear()
            return
        self._recent[key] = self._seq
        self._recent.move_to_end(key)
        if len(self._recent) > _RECENT:
            _, seq = self._recent.popitem(last=False)
            self._floor = max(self._floor, seq)

    def may_fill(self, key: str, token: int) -> bool:
        return token >= self._floor and self._recent.get(key, 0) <= token


class RedisTracker(_FillGuard):
    polls = False

    def __init__(self, url: BackendURL, prefix: str, l1: MemoryBackend, timeout: float) -> None:
        super().__init__()
        self.url, self.prefix, self.l1, self.timeout = url, prefix, l1, timeout
        self.ready = False
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    def poll(self, force: bool = False) -> None:
        return None

    def may_fill(self, key: str, token: int) -> bool:
        return self.ready and super().may_fill(key, token)

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        task = self._task
        if task is None or task.done() or task.get_loop() is not loop:  # first use, or a new event loop
            if task is not None:
                self._drop_all()
            self._closing = False
            self._task = loop.create_task(self._run(), name="perfkit-cache-tracking")

    def _drop_all(self) -> None:
        self.ready = False
        self.l1.remove_prefix(self.prefix)
        self.invalidated(None)

    async def _node_urls(self) -> list[BackendURL]:
        """The servers to follow: the one Redis, or (ClusterTracker) every primary of the cluster."""
        return [self.url]

    async def _run(self) -> None:
        from perfkit.redisclient import cache_options, close_client, make_client

        backoff, outage_logged = 0.05, False
        while not self._closing:
            clients: list[Any] = []
            try:
                conns = []
                for url in await self._node_urls():
                    options = cache_options(url, timeout=self.timeout, max_connections=1, protocol=2)
                    clients.append(make_client(url, options))
                    conns.append(await self._subscribe(clients[-1]))
                self._drop_all()  # anything cached before the subscriptions may have been missed
                self.ready, backoff = True, 0.05
                if outage_logged:
                    log.info("cache L1 coherence for %r restored", self.prefix)
                    outage_logged = False
                await self._listen_all(conns)
            except asyncio.CancelledError:
                self._drop_all()
                for client in clients:
                    await close_client(client)
                raise
            except Exception as exc:  # any failure: L1 off until the subscription is back
                self._drop_all()
                if not outage_logged:
                    log.warning(
                        "cache L1 coherence for %r lost (%s); L1 bypassed until Redis is back",
                        self.prefix,
                        exc,
                    )
                    outage_logged = True
            for client in clients:
                with contextlib.suppress(Exception):
                    await close_client(client)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)

    async def _subscribe(self, client: Any) -> Any:
        """One connection that asks its server to report every change under the prefix, to itself."""
        from perfkit.cache.backends.redis_keys import INVALIDATE_CHANNEL

        conn = await client.connection_pool.get_connection()
        await conn.send_command("CLIENT", "ID")
        cid = await conn.read_response()
        await conn.send_command("CLIENT", "TRACKING", "ON", "REDIRECT", cid, "BCAST", "PREFIX", self.prefix)
        await conn.read_response()
        await conn.send_command("SUBSCRIBE", INVALIDATE_CHANNEL)
        await conn.read_response()
        return conn

    async def _listen_all(self, conns: list[Any]) -> None:
        """Listen on every connection until one fails (then raise its error) or the tracker closes."""
        if len(conns) == 1:
            await self._listen(conns[0])
            return
        tasks = [asyncio.ensure_future(self._listen(conn)) for conn in conns]
        tasks.append(asyncio.ensure_future(self._watch()))
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks)
        for task in done:
            exc = None if task.cancelled() else task.exception()
            if exc is not None:
                raise exc

    async def _watch(self) -> None:
        """Raise when the servers to follow change (ClusterTracker); a single Redis never does."""
        await asyncio.Event().wait()

    async def _listen(self, conn: object) -> None:
        from redis.exceptions import TimeoutError as RedisTimeoutError

        idle = 0
        while not self._closing:
            try:
                msg = await conn.read_response(timeout=5.0, disconnect_on_error=False)  # type: ignore[attr-defined]
            except (TimeoutError, RedisTimeoutError):
                idle += 1
                if idle > 1:
                    raise
                await conn.send_command("PING")  # type: ignore[attr-defined]
                continue
            idle = 0
            if not isinstance(msg, list) or len(msg) < 3 or msg[0] != b"message":
                continue
            keys = msg[2]
            if keys is None:  # FLUSHDB / FLUSHALL
                self.l1.remove_prefix(self.prefix)
                self.invalidated(None)
                continue
            for raw in keys:
                key = raw.decode("utf-8", "surrogateescape")
                self.l1.remove((key,))
                self.invalidated(key)

    async def close(self) -> None:
        self._closing = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            # bounded: a cancellation that lands as a read timeout expires is swallowed (CPython 3.11)
            await asyncio.wait({task}, timeout=2.0)
            if not task.done():
                task.cancel()


class SQLiteWatcher(_FillGuard):
    ready = True
    polls = True

    def __init__(self, backend: object, prefix: str, l1: MemoryBackend, interval: float) -> None:
        super().__init__()
        self.backend, self.prefix, self.l1, self.interval = backend, prefix, l1, interval
        self._next = 0.0

    def start(self) -> None:
        return None

    def poll(self, force: bool = False) -> None:
        now = time.monotonic()
        if now < self._next and not force:
            return
        self._next = now + self.interval
        try:
            changes = self.backend.changes_since_last(force)  # type: ignore[attr-defined]
        except BackendError:
            changes = None
        if changes is None:
            self.l1.remove_prefix(self.prefix)
            self.invalidated(None)
            return
        for op, arg in changes:
            if op == "k":
                self.l1.remove((arg,))
                self.invalidated(arg)
            else:
                if op == "p":
                    self.l1.remove_match(arg)
                else:  # "c": a namespace cleared
                    self.l1.remove_prefix(arg)
                self.invalidated(None)

    async def close(self) -> None:
        return None


class ClusterTracker(RedisTracker):
    """Client-side tracking on Redis Cluster: one tracking connection per primary, since each node
    reports only the changes it makes. A namespace lives in one slot, but following every primary
    keeps the L1 right while that slot migrates. The set of primaries is re-read every
    `topology_interval` seconds; when it changes (a failover, a node added) the L1 is dropped and
    every subscription made again."""

    topology_interval = 5.0

    def __init__(self, url: BackendURL, prefix: str, l1: MemoryBackend, timeout: float) -> None:
        super().__init__(url, prefix, l1, timeout)
        self._primaries: list[str] = []

    @property
    def followed(self) -> list[str]:
        """`host:port` of the primaries whose changes this tracker follows (as last read)."""
        return list(self._primaries)

    async def _primary_names(self) -> list[str]:
        """`host:port` of every primary, from CLUSTER NODES of the first seed (or known node) that answers."""
        from perfkit.redisclient import (
            cache_options,
            close_client,
            make_client,
            node_url,
            primaries,
            seed_names,
        )

        error: Exception = ConnectionError(f"no node of {self.url.redacted()} answered")
        for name in dict.fromkeys([*seed_names(self.url), *self._primaries]):
            node = node_url(self.url, name)
            client = make_client(node, cache_options(node, timeout=self.timeout, max_connections=1))
            try:
                reply = await client.execute_command("CLUSTER NODES")  # type: ignore[no-untyped-call, unused-ignore]
                return primaries(reply)
            except Exception as exc:
                error = exc
            finally:
                await close_client(client)
        raise error

    async def _node_urls(self) -> list[BackendURL]:
        from perfkit.redisclient import node_url

        self._primaries = await self._primary_names()
        return [node_url(self.url, name) for name in self._primaries]

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.topology_interval)  # a periodic check: nothing to await but time
            if await self._primary_names() != self._primaries:
                raise ConnectionError("the cluster's primaries changed")
