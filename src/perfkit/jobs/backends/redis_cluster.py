"""Redis Cluster job backend: `redis+cluster://host:port?prefix=…` (`rediss+cluster://` for TLS).

The Redis backend unchanged over redis-py's asyncio `RedisCluster`: every key of a queue shares the
hash tag `{<prefix>:q:<queue>}` (`redis_keys.py`), so each script runs on one node. The one command
that spans queues is the idle wait, a BLPOP on every queue's wake list: on a cluster it is one BLPOP
per queue, and the first to return wakes the worker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from perfkit.backends import BackendURL
from perfkit.jobs.backends.redis import RedisBackend

_OUR_OPTIONS = ("prefix",)


class RedisClusterBackend(RedisBackend):
    kind = "redis-cluster"

    def __init__(self, url: BackendURL, **options: Any) -> None:
        super().__init__(url, **options)
        self._blpops: dict[str, asyncio.Task[None]] = {}  # queue -> its BLPOP still in flight

    def _client(self, url: BackendURL, max_connections: int) -> Any:
        from redis.asyncio.cluster import RedisCluster

        parts = urlsplit(url.raw)
        query = urlencode([(k, v) for k, v in url.options.items() if k not in _OUR_OPTIONS])
        driver = urlunsplit((url.scheme.split("+", 1)[0], parts.netloc, "", query, ""))
        return RedisCluster.from_url(
            driver,
            max_connections=max_connections,  # per node
            socket_connect_timeout=5,
            health_check_interval=30,
            protocol=2,  # as on one node: replies read as RESP2 flat lists
        )

    async def wait(self, queues: Sequence[str], idle: float) -> None:
        """Return when any queue's wake list has a token, or after about `idle` seconds.

        One BLPOP per queue, in a task that outlives this call when another queue woke first: it is
        not cancelled (redis-py 8 may finish a cancelled BLPOP anyway, and a token it popped would be
        lost to the next wait) but awaited again by the next wait, or by close().
        """
        if len(queues) <= 1:
            await super().wait(queues, idle)
            return
        blpops = self._blpops
        for queue in queues:
            if queue not in blpops:
                blpops[queue] = asyncio.ensure_future(super().wait([queue], idle))
        done, _ = await asyncio.wait([blpops[q] for q in queues], return_when=asyncio.FIRST_COMPLETED)
        for queue in queues:
            if blpops.get(queue) in done:
                del blpops[queue]
        for task in done:
            task.result()  # an outage surfaces as it does on one node

    async def close(self) -> None:
        await self._pipeline.close()  # enqueues already accepted are sent before the connections go
        tasks = list(self._blpops.values())
        self._blpops.clear()
        for task in tasks:
            task.cancel()
        client = self.client
        await client.aclose()
        # aclose() alone skips the nodes after a connection error (the client awaits re-initialization);
        # disconnecting them also ends a BLPOP still blocked in a task above
        await client.nodes_manager.aclose()  # type: ignore[attr-defined]
        await client.nodes_manager.aclose("startup_nodes")  # type: ignore[attr-defined]
        if tasks:
            await asyncio.wait(tasks, timeout=5)
            for task in tasks:
                if task.done() and not task.cancelled():
                    task.exception()  # retrieved: a BLPOP cut by the close is expected
