"""Redis Cluster job backend: `redis+cluster://host:port?prefix=…` (`rediss+cluster://` for TLS).

The Redis backend unchanged over redis-py's asyncio `RedisCluster`: every key of a queue shares the
hash tag `{<prefix>:q:<queue>}` (`redis_keys.py`), so each script runs on one node. The one command
that spans queues is the idle wait, a BLPOP on every queue's wake list: on a cluster it is one BLPOP
per queue, and the first to return wakes the worker. `perfkit.redisclient` makes the client (the
same settings as on one node, `?nodes=host:port,…` for more startup nodes) and closes every node.
"""

from __future__ import annotations

from collections.abc import Sequence

from perfkit.jobs.backends.redis import RedisBackend


class RedisClusterBackend(RedisBackend):
    kind = "redis-cluster"

    def wake_groups(self, queues: Sequence[str]) -> list[tuple[str, ...]]:
        """One group per queue: a cluster runs no command across slots, so `wait` sends one BLPOP per
        queue, each in a task that outlives the call when another queue woke first or the call was
        cancelled: the next wait takes it over (a token it popped is not lost), or close() ends it."""
        return [(self.queue_keys(q).wake,) for q in queues]
