"""Shared backend on Redis Cluster: `redis+cluster://host:port` (`rediss+cluster://` for TLS).

The same backend as single-node Redis (`redis.py`) over redis-py's asyncio `RedisCluster`. Every key
of a namespace carries the namespace's hash tag (`redis_keys.py`), so the scripts and pages of one
call touch one slot; SCAN-based deletion runs on every primary. Only what the cluster client cannot
do differently is overridden here: it refuses EVALSHA inside a pipeline, so a tagged `set_many`
queues the script itself (`queue_set_tagged`, the base backend's seam for it). The client is made
(and closed) by `perfkit.redisclient`.

The URL names one node to learn the cluster from; `?nodes=host:port,host:port` adds more, for a
start while that one is down. `?max_connections=` is per node (default 64).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from perfkit.cache.backends import redis_keys as K
from perfkit.cache.backends.redis import RedisBackend
from perfkit.redisclient import close_client, node_url, primaries, seed_names

# the cluster helpers moved to perfkit.redisclient; coherence still reads them from here
__all__ = ["RedisClusterBackend", "close_cluster_client", "node_url", "primaries", "seed_names"]
close_cluster_client = close_client

if TYPE_CHECKING:
    from perfkit.cache.backends.memory import MemoryBackend
    from perfkit.cache.coherence import Coherence


class RedisClusterBackend(RedisBackend):
    kind = "redis-cluster"

    def coherence(self, prefix: str, l1: MemoryBackend, interval: float) -> Coherence:
        """Client-side tracking on every primary of the cluster (`ClusterTracker`)."""
        from perfkit.cache.coherence import ClusterTracker

        return ClusterTracker(self.url, prefix, l1, self.timeout)

    async def queue_set_tagged(self, pipe: Any, keys: list[Any], args: list[Any]) -> None:
        """The script itself (EVAL): a cluster pipeline refuses EVALSHA."""
        pipe.eval(K.SET_TAGGED, len(keys), *keys, *args)
