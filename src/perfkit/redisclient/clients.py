"""Every Redis client perfkit makes: one node, Redis Cluster, TLS (`rediss://`), per-use timeouts.

A user of Redis (the cache, the job queue, the rate limiter, the monitor store) names how it talks
to Redis once, in a `ClientOptions` from its builder below, and `make_client` turns a URL into the
client: `redis://`, `rediss://` and `unix://` give a `Redis`, `redis+cluster://` and
`rediss+cluster://` a `RedisCluster` (`?nodes=host:port,…` adds startup nodes; `?max_connections=`
is per node). The settings differ on purpose:

    use        timeouts (read / connect)  retries                  pool
    cache      the cache's timeout (0.5)  none: an outage costs    one node: one multiplexed
                                          one timeout              connection (multiplex.py);
                                                                   cluster: 64 per node
    jobs       5 s / 5 s, health checks   redis-py's default       `max_connections` (64), RESP2;
                                                                   its scripts: one multiplexed
                                                                   connection
    ratelimit  its timeout (0.25)         redis-py's default (one  redis-py's default
                                          node), none (cluster: 64 per node)
    monitor    2 s / 2 s                  as ratelimit             as ratelimit

URL query options other than perfkit's (`own`) reach redis-py where the user always let them (the
jobs client, every cluster client); the others keep only the URL's scheme, host and database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from perfkit.backends import BackendURL
from perfkit.errors import ConfigurationError
from perfkit.redisclient.cluster import driver_scheme, is_cluster, seed_names
from perfkit.redisclient.errors import ErrorPolicy
from perfkit.redisclient.multiplex import Multiplexed, Settings
from perfkit.redisclient.packing import with_hiredis_packing
from perfkit.redisclient.pool import BoundedPool

Client = aioredis.Redis | RedisCluster | Multiplexed
_CLUSTER_OPTIONS = ("nodes", "max_connections")  # read by perfkit, never passed to redis-py


@dataclass(frozen=True)
class ClientOptions:
    """How one user talks to Redis; None leaves a setting at redis-py's default."""

    socket_timeout: float | None
    connect_timeout: float | None
    no_retries: bool = False  # True: Retry(NoBackoff(), 0), an outage costs one timeout
    retry_on_timeout: bool | None = None
    health_check_interval: float | None = None
    protocol: int | None = None
    max_connections: int | None = None  # per node on a cluster
    pool_wait: float | None = None  # one node: a bounded pool where a burst waits this long
    # one node: the URL's query options (`?db=`, `?client_name=`, `?ssl_cert_reqs=` ...) go to redis-py,
    # as a cluster's always do; False drops them
    url_options: bool = True
    own: tuple[str, ...] = ("prefix",)  # URL options that are perfkit's, kept from redis-py
    # one node: one connection shared by every caller of a loop (`perfkit.redisclient.multiplex`)
    # instead of redis-py's pool; for users whose commands never block (the cache)
    multiplexed: bool = False
    # multiplexed: a URL option only a pool has is refused (True) or left out (False: a second client
    # of a user whose pool takes it)
    strict_url: bool = True
    errors: ErrorPolicy = field(default_factory=ErrorPolicy)

    def driver_kwargs(self) -> dict[str, Any]:
        pairs: dict[str, Any] = {
            "socket_timeout": self.socket_timeout,
            "socket_connect_timeout": self.connect_timeout,
            "retry": Retry(NoBackoff(), 0) if self.no_retries else None,
            "retry_on_timeout": self.retry_on_timeout,
            "health_check_interval": self.health_check_interval,
            "protocol": self.protocol,
            "max_connections": self.max_connections,
        }
        return {k: v for k, v in pairs.items() if v is not None}


CACHE_ERRORS = ErrorPolicy()
JOBS_ERRORS = ErrorPolicy(unavailable="Redis {where} unavailable: {exc}", failed="Redis {where}: {exc}")
RATELIMIT_ERRORS = ErrorPolicy(unavailable="rate limit Redis unavailable: {exc!r}", failed=None)
MONITOR_ERRORS = ErrorPolicy(unavailable=None, failed="monitor store {where}: {exc}", catch_all=True)
JOBS_SOCKET_TIMEOUT = 5.0  # redis-py 8's default, explicit: an idle BLPOP is kept under it
MONITOR_TIMEOUT = 2.0  # the publisher and the dashboard then go on without the store


def _per_node(url: BackendURL, given: int | None = None) -> int:
    return given or int(url.options.get("max_connections", 64))


def cache_options(
    url: BackendURL,
    *,
    timeout: float,
    max_connections: int | None = None,
    protocol: int | None = None,
    multiplexed: bool = False,
) -> ClientOptions:
    """The cache's: short timeouts, no retries (the cache front degrades); on one node either one
    multiplexed connection (the backend's commands) or a bounded pool (coherence's subscribers)."""
    return ClientOptions(
        socket_timeout=timeout,
        connect_timeout=timeout,
        no_retries=True,
        max_connections=_per_node(url, max_connections),
        pool_wait=timeout,  # a burst waits this long for a free connection instead of failing at once
        protocol=protocol,
        errors=CACHE_ERRORS,
        multiplexed=multiplexed,
    )


def jobs_options(url: BackendURL, *, max_connections: int, multiplexed: bool = False) -> ClientOptions:
    """The job queue's: 5 s timeouts (`?socket_timeout=` overrides), health checks, RESP2 replies;
    `multiplexed`: its scripts' one connection (options only a pool has are left to the pool)."""
    return ClientOptions(
        socket_timeout=JOBS_SOCKET_TIMEOUT,
        connect_timeout=5,
        health_check_interval=30,
        protocol=2,  # replies are read as RESP2 (flat lists); redis-py 8 defaults to RESP3 maps
        max_connections=int(url.options.get("max_connections") or max_connections),
        errors=JOBS_ERRORS,
        multiplexed=multiplexed,
        strict_url=False,
    )


def _small_options(url: BackendURL, timeout: float, errors: ErrorPolicy, **single: Any) -> ClientOptions:
    """The rate limiter's and the monitor store's: one node with redis-py's pool and retries, a cluster
    as the cache makes it (no retries, 64 connections per node)."""
    if is_cluster(url):
        return ClientOptions(
            socket_timeout=timeout,
            connect_timeout=timeout,
            no_retries=True,
            max_connections=_per_node(url),
            errors=errors,
        )
    return ClientOptions(socket_timeout=timeout, connect_timeout=timeout, errors=errors, **single)


def ratelimit_options(url: BackendURL, *, timeout: float) -> ClientOptions:
    return _small_options(url, timeout, RATELIMIT_ERRORS, retry_on_timeout=False)


def monitor_options(url: BackendURL) -> ClientOptions:
    return _small_options(url, MONITOR_TIMEOUT, MONITOR_ERRORS)


def make_client(url: BackendURL, options: ClientOptions) -> Any:
    """A `Redis` (or, for a `+cluster` URL, a `RedisCluster`) for `url`, set up as `options` say.
    Typed Any: both clients answer the same commands, and each backend uses them alike."""
    if is_cluster(url):
        return cluster_client(url, options)
    return single_client(url, options)


def single_client(url: BackendURL, options: ClientOptions) -> aioredis.Redis | Multiplexed:
    if options.url_options:
        parts = urlsplit(url.raw)
        ours = {*options.own, "max_connections"}
        query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k not in ours])
        driver_url = urlunsplit(parts._replace(query=query))
    else:
        driver_url = url.raw.split("?", 1)[0]
    if options.multiplexed:
        settings = Settings.from_url(
            driver_url,
            strict=options.strict_url,
            socket_timeout=options.socket_timeout,
            socket_connect_timeout=options.connect_timeout,
        )
        return Multiplexed(settings)
    kwargs = options.driver_kwargs()
    if options.pool_wait is not None:
        bounded = BoundedPool.from_url(driver_url, timeout=options.pool_wait, **kwargs)
        return aioredis.Redis(connection_pool=with_hiredis_packing(bounded))
    pool = aioredis.ConnectionPool.from_url(driver_url, **kwargs)
    return aioredis.Redis(connection_pool=with_hiredis_packing(pool))  # closed by close_client


def cluster_client(url: BackendURL, options: ClientOptions) -> RedisCluster:
    """The URL's options go to redis-py, except `nodes`, `max_connections` and the user's `own`."""
    if not url.host:
        raise ConfigurationError("url", f"{url.redacted()!r} names no cluster node")
    parts = urlsplit(url.raw)
    seeds = seed_names(url)
    ours = {*_CLUSTER_OPTIONS, *options.own}
    query = urlencode([(k, v) for k, v in url.options.items() if k not in ours])
    driver_url = urlunsplit((driver_scheme(url), parts.netloc, "", query, ""))
    kwargs = options.driver_kwargs()
    if len(seeds) > 1:
        kwargs["startup_nodes"] = [
            ClusterNode(n.rpartition(":")[0], int(n.rpartition(":")[2])) for n in seeds
        ]
    return RedisCluster.from_url(driver_url, **kwargs)


def connection_kwargs(client: Client) -> dict[str, Any]:
    """The settings each connection of `client` is made with (after the URL's overrides)."""
    if isinstance(client, RedisCluster):
        return dict(client.nodes_manager.connection_kwargs)
    if isinstance(client, Multiplexed):
        return client.connection_kwargs
    return dict(client.connection_pool.connection_kwargs)


async def close_client(client: Client) -> None:
    """Close every connection of `client`, in use or idle. `RedisCluster.aclose()` alone skips its
    nodes after a connection error (the client is then marked for re-initialization)."""
    await client.aclose()
    if isinstance(client, Multiplexed):
        return
    if isinstance(client, RedisCluster):
        await client.nodes_manager.aclose()
        await client.nodes_manager.aclose("startup_nodes")
    else:
        await client.connection_pool.disconnect()
