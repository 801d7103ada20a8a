"""The Redis monitor store on Redis Cluster: `redis+cluster://host:port?prefix=…` (`rediss+cluster://`).

The Redis store unchanged over redis-py's asyncio `RedisCluster`, made by `perfkit.redisclient`
(`?nodes=host:port,…` and a per-node `?max_connections=` work as they do for the cache). Its pipelines, the
rollup deletion and the lease script name several keys, so every key carries one hash tag made of the
prefix (`{perfkit:monitor}:snapshots`, `{perfkit:monitor}:rollup:<minute>`, …): they share a slot and
each call goes to one node. A prefix that already holds a `{tag}` is used as it is. The store is small
(one hash per minute of retention), so one slot is plenty; give each app a prefix of its own to spread
apps over the primaries. SCAN (`drop`) runs on every primary, as redis-py's cluster `scan_iter` does.
"""

from __future__ import annotations

from typing import Any

from perfkit.backends import BackendURL
from perfkit.monitor.store.redis import RedisStore


def hash_tagged(prefix: str) -> str:
    """`prefix` with a hash tag: `perfkit:monitor:` -> `{perfkit:monitor}:`; one with a tag unchanged."""
    start = prefix.find("{")
    if start >= 0 and prefix.find("}", start + 1) > start + 1:  # Redis hashes a non-empty {…} only
        return prefix
    if prefix.endswith(":"):
        return "{" + prefix[:-1] + "}:"
    return "{" + prefix + "}"


class RedisClusterStore(RedisStore):
    kind = "redis-cluster"

    def __init__(self, url: BackendURL, **options: Any) -> None:
        super().__init__(url, **options)
        self.prefix = hash_tagged(self.prefix)
