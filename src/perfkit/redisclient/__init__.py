"""perfkit's one Redis plumbing: clients, driver-error translation and Lua scripts for every user.

Named `redisclient`, not `redis`: a module `perfkit/redis.py` would shadow redis-py for tools that put
the package folder on `sys.path` (a script run from `src/perfkit/`, some test runners and type checkers).

    clients.py   ClientOptions per use (cache, jobs, ratelimit, monitor) and make_client/close_client
    cluster.py   Redis Cluster URLs (`redis+cluster://…?nodes=`), node URLs, CLUSTER NODES replies
    pool.py      BoundedPool, the cache's pool that waits briefly when full
    errors.py    ErrorPolicy and Translator: driver errors into perfkit.errors, in one place

The cache, jobs, web.ratelimit and monitor.store Redis backends build on this module and nothing else
of each other's. redis-py is imported here: import this module only where the `redis` extra is needed.
"""

from __future__ import annotations

from perfkit.redisclient.clients import (
    CACHE_ERRORS,
    JOBS_ERRORS,
    JOBS_SOCKET_TIMEOUT,
    MONITOR_ERRORS,
    MONITOR_TIMEOUT,
    RATELIMIT_ERRORS,
    Client,
    ClientOptions,
    cache_options,
    close_client,
    cluster_client,
    connection_kwargs,
    jobs_options,
    make_client,
    monitor_options,
    ratelimit_options,
    single_client,
)
from perfkit.redisclient.cluster import driver_scheme, is_cluster, node_url, primaries, seed_names
from perfkit.redisclient.errors import (
    DRIVER_ERRORS,
    UNAVAILABLE,
    ErrorPolicy,
    Translator,
    is_driver_error,
    is_outage,
    translated,
)
from perfkit.redisclient.pool import BoundedPool

__all__ = [
    "CACHE_ERRORS",
    "DRIVER_ERRORS",
    "JOBS_ERRORS",
    "JOBS_SOCKET_TIMEOUT",
    "MONITOR_ERRORS",
    "MONITOR_TIMEOUT",
    "RATELIMIT_ERRORS",
    "UNAVAILABLE",
    "BoundedPool",
    "Client",
    "ClientOptions",
    "ErrorPolicy",
    "Translator",
    "cache_options",
    "close_client",
    "cluster_client",
    "connection_kwargs",
    "driver_scheme",
    "is_cluster",
    "is_driver_error",
    "is_outage",
    "jobs_options",
    "make_client",
    "monitor_options",
    "node_url",
    "primaries",
    "ratelimit_options",
    "seed_names",
    "single_client",
    "translated",
]
