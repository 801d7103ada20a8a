"""Redis Cluster GCRA: `redis+cluster://host:port?prefix=…` (`rediss+cluster://` for TLS).

The Redis limiter unchanged over redis-py's asyncio `RedisCluster`, built by the cache's client factory
(so `?nodes=host:port,…` and a per-node `?max_connections=` work as they do there). The script reads and
writes one key, so it runs on that key's node and no hash tag is needed: budgets spread over the
primaries. A node that is down, or a cluster that is, costs its keys one timeout at most and the
middleware fails open or closed as it does for a single Redis.
"""

from __future__ import annotations

from redis.asyncio.cluster import RedisCluster

from perfkit.backends import BackendURL
from perfkit.cache.backends.redis_cluster import close_cluster_client, cluster_client_from_url
from perfkit.web.ratelimit.redis import RedisRateLimit


class RedisClusterRateLimit(RedisRateLimit):
    def _client(self, url: BackendURL, timeout: float) -> RedisCluster:
        return cluster_client_from_url(url, timeout=timeout, own=("prefix",))

    async def close(self) -> None:
        await close_cluster_client(self.client)  # type: ignore[arg-type]
