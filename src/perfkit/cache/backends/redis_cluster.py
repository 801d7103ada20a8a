"""Shared backend on Redis Cluster: `redis+cluster://host:port` (`rediss+cluster://` for TLS).

The same backend as single-node Redis (`redis.py`) over redis-py's asyncio `RedisCluster`. Every key
of a namespace carries the namespace's hash tag (`redis_keys.py`), so the scripts and pages of one
call touch one slot; SCAN-based deletion runs on every primary. Only what the cluster client cannot
do differently is overridden here: it refuses EVALSHA inside a pipeline, so `set_many` with tags
sends the script itself, and closing it takes more than `aclose()`.

The URL names one node to learn the cluster from; `?nodes=host:port,host:port` adds more, for a
start while that one is down. `?max_connections=` is per node (default 64).
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from perfkit.backends import BackendURL, parse_url
from perfkit.cache.backends import redis_keys as K
from perfkit.cache.backends.redis import DRIVER_ERRORS, RedisBackend, _ms, translate
from perfkit.errors import ConfigurationError

if TYPE_CHECKING:
    from perfkit.cache.backends.memory import MemoryBackend
    from perfkit.cache.coherence import Coherence

_OUR_OPTIONS = ("nodes", "max_connections")


def driver_scheme(url: BackendURL) -> str:
    """`redis` or `rediss`, the scheme redis-py understands, for a `redis+cluster`-style URL."""
    return url.scheme.split("+", 1)[0]


def node_url(url: BackendURL, name: str) -> BackendURL:
    """The plain `redis://` URL of one node (`host:port`) with the cluster URL's credentials."""
    parts = urlsplit(url.raw)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@{name}" if userinfo else name
    return parse_url(urlunsplit((driver_scheme(url), netloc, "", "", "")))


def seed_names(url: BackendURL) -> list[str]:
    """`host:port` of the URL's node and of its `?nodes=` list."""
    extra = [n.strip() for n in url.options.get("nodes", "").split(",") if n.strip()]
    for name in extra:
        host, _, port = name.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigurationError("url", f"nodes= wants host:port items, got {name!r}")
    return [f"{url.host}:{url.port or 6379}", *extra]


def primaries(reply: Any) -> list[str]:
    """`host:port` of the healthy primaries in a CLUSTER NODES reply (text, or redis-py's dict)."""
    if isinstance(reply, dict):
        flags = {name: str(info.get("flags", "")) for name, info in reply.items()}
    else:
        text = reply.decode() if isinstance(reply, bytes) else str(reply)
        rows = [line.split() for line in text.splitlines() if line.strip()]
        flags = {row[1].split("@", 1)[0]: row[2] for row in rows}
    return sorted(
        name for name, f in flags.items() if "master" in f and "fail" not in f and "noaddr" not in f
    )


def cluster_client_from_url(
    url: BackendURL, *, timeout: float, max_connections: int | None = None, own: Collection[str] = ()
) -> RedisCluster:
    """A `RedisCluster` for a `redis+cluster://` URL. The URL's options go to redis-py, except `nodes`,
    `max_connections` and the caller's `own` (such as `prefix`)."""
    if not url.host:
        raise ConfigurationError("url", f"{url.redacted()!r} names no cluster node")
    parts = urlsplit(url.raw)
    seeds = seed_names(url)
    # the rest (e.g. ssl_cert_reqs) goes to redis-py as it would for redis://
    ours = {*_OUR_OPTIONS, *own}
    options = urlencode([(k, v) for k, v in url.options.items() if k not in ours])
    clean = urlunsplit((driver_scheme(url), parts.netloc, "", options, ""))
    kwargs: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": Retry(NoBackoff(), 0),  # as on one node: an outage costs one timeout, the front degrades
        "max_connections": max_connections or int(url.options.get("max_connections", 64)),
    }
    if len(seeds) > 1:
        kwargs["startup_nodes"] = [
            ClusterNode(n.rpartition(":")[0], int(n.rpartition(":")[2])) for n in seeds
        ]
    return RedisCluster.from_url(clean, **kwargs)


class RedisClusterBackend(RedisBackend):
    kind = "redis-cluster"

    def coherence(self, prefix: str, l1: MemoryBackend, interval: float) -> Coherence:
        """Client-side tracking on every primary of the cluster (`ClusterTracker`)."""
        from perfkit.cache.coherence import ClusterTracker

        return ClusterTracker(self.url, prefix, l1, self.timeout)

    def _connect(self) -> None:
        self.client = cluster_client_from_url(self.url, timeout=self.timeout)  # type: ignore[assignment]
        self._set_tagged = self.client.register_script(K.SET_TAGGED)
        self._delete = self.client.register_script(K.DELETE)
        self._incr = self.client.register_script(K.INCR)
        self._release = self.client.register_script(K.RELEASE_LOCK)
        self._invalidate_page = self.client.register_script(K.INVALIDATE_PAGE)

    async def set_many(
        self, items: Sequence[tuple[str, Any]], ttl: float | None, tags: Sequence[str] = ()
    ) -> None:
        if not tags:
            await super().set_many(items, ttl, tags)
            return
        self._bind()
        tag_keys = [K.tag_key(t) for t in tags]
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                now = int(time.time() * 1000)
                for key, value in items:
                    keys = [key, K.keytags_key(key), *tag_keys]
                    pipe.eval(K.SET_TAGGED, len(keys), *keys, value, _ms(ttl) or "", now)
                await pipe.execute()
        except DRIVER_ERRORS as exc:
            raise translate(exc, self.where) from exc

    async def close(self) -> None:
        await close_cluster_client(self.client)  # type: ignore[arg-type]


async def close_cluster_client(client: RedisCluster) -> None:
    """Close every node's connections. `RedisCluster.aclose()` alone skips that after a connection
    error (the client is then marked for re-initialization), leaving the live nodes' sockets open."""
    await client.aclose()
    await client.nodes_manager.aclose()
    await client.nodes_manager.aclose("startup_nodes")
