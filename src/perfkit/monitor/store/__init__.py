"""Where the monitoring part keeps what several processes share: snapshots, per-minute rollups, state.

Chosen by URL scheme like every perfkit backend: `sqlite:///.perfkit/monitor.db` (the default, embedded;
`memory://` under a test runner, see `perfkit.monitor.config.default_url`),
`redis://...` or `redis+cluster://...` (several hosts), `memory://` (one process, tests).
"""

from perfkit.backends import Registry
from perfkit.monitor.store.base import MonitorStore

registry: Registry[MonitorStore] = Registry("monitor store")
registry.register("memory", "perfkit.monitor.store.memory:MemoryStore")
registry.register("sqlite", "perfkit.monitor.store.sqlite:SQLiteStore")
registry.register("redis", "perfkit.monitor.store.redis:RedisStore", extra="redis")
registry.register("rediss", "perfkit.monitor.store.redis:RedisStore", extra="redis")
for _scheme in ("redis+cluster", "rediss+cluster"):
    registry.register(_scheme, "perfkit.monitor.store.redis_cluster:RedisClusterStore", extra="redis")

__all__ = ["MonitorStore", "registry"]
