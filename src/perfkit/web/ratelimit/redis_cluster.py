"""Redis Cluster GCRA: `redis+cluster://host:port?prefix=…` (`rediss+cluster://` for TLS).

The Redis limiter unchanged over redis-py's asyncio `RedisCluster`, made by `perfkit.redisclient` (so
`?nodes=host:port,…` and a per-node `?max_connections=` work as they do for the cache). The script reads
and writes one key, so it runs on that key's node and no hash tag is needed: budgets spread over the
primaries. A node that is down, or a cluster that is, costs its keys one timeout at most and the
middleware fails open or closed as it does for a single Redis.
"""

from __future__ import annotations

from perfkit.web.ratelimit.redis import RedisRateLimit


class RedisClusterRateLimit(RedisRateLimit):
    """The scheme picks the cluster client (`perfkit.redisclient.make_client`); nothing else differs."""
