"""Redis Cluster job backend: `redis+cluster://host:port?prefix=…` (`rediss+cluster://` for TLS).

The Redis backend unchanged over redis-py's asyncio `RedisCluster`: every key of a queue shares the
hash tag `{<prefix>:q:<queue>}` (`redis_keys.py`), so each script runs on one node. The one command
that spans queues is the idle wait, a BLPOP on every queue's wake list: on a cluster it is one BLPOP
per queue, and the first to return wakes the worker.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from perfkit.backends import BackendURL
from perfkit.jobs.backends.redis import SOCKET_TIMEOUT, RedisBackend, _settled

_OUR_OPTIONS = ("prefix",)


class RedisClusterBackend(RedisBackend):
    kind = "redis-cluster"

    def _client(self, url: BackendURL, max_connections: int) -> Any:
        from redis.asyncio.cluster import RedisCluster

        parts = urlsplit(url.raw)
        query = urlencode([(k, v) for k, v in url.options.items() if k not in _OUR_OPTIONS])
        driver = urlunsplit((url.scheme.split("+", 1)[0], parts.netloc, "", query, ""))
        return RedisCluster.from_url(
            driver,
            max_connections=max_connections,  # per node
            socket_connect_timeout=5,
            socket_timeout=SOCKET_TIMEOUT,  # `?socket_timeout=` in the URL overrides it
            health_check_interval=30,
            protocol=2,  # as on one node: replies read as RESP2 flat lists
        )

    def _connection_kwargs(self) -> dict[str, Any]:
        return dict(self.client.nodes_manager.connection_kwargs)  # type: ignore[attr-defined]

    async def wait(self, queues: Sequence[str], idle: float) -> None:
        """Return when any queue's wake list has a token, or after about `idle` seconds.

        One BLPOP per queue (a cluster runs no command across slots), each in a task that outlives
        this call when another queue woke first or the call was cancelled: the next wait takes it
        over (a token it popped is not lost), or close() ends it (see `RedisBackend._blpop`).
        """
        await self._wait_any([(self._k(q).wake,) for q in queues], idle)

    async def close(self) -> None:
        await self._pipeline.close()  # enqueues already accepted are sent before the connections go
        blpops = self._take_blpops()
        client = self.client
        await client.aclose()
        # aclose() alone skips the nodes after a connection error (the client awaits re-initialization);
        # disconnecting them also ends a BLPOP still blocked in a task above
        await client.nodes_manager.aclose()  # type: ignore[attr-defined]
        await client.nodes_manager.aclose("startup_nodes")  # type: ignore[attr-defined]
        await _settled(blpops)
