"""Job storage backends, chosen by URL scheme: `sqlite://`, `postgresql://`, `redis://`, `redis+cluster://`."""

from __future__ import annotations

from perfkit.backends import Registry
from perfkit.jobs.backends.base import JobBackend

registry: Registry[JobBackend] = Registry("jobs")
registry.register("sqlite", "perfkit.jobs.backends.sqlite:SQLiteBackend")
registry.register("redis", "perfkit.jobs.backends.redis:RedisBackend", extra="redis")
registry.register("rediss", "perfkit.jobs.backends.redis:RedisBackend", extra="redis")
for _scheme in ("redis+cluster", "rediss+cluster"):
    registry.register(_scheme, "perfkit.jobs.backends.redis_cluster:RedisClusterBackend", extra="redis")
for _scheme in ("postgresql", "postgres"):
    registry.register(_scheme, "perfkit.jobs.backends.postgres:PostgresBackend", extra="postgres")

__all__ = ["JobBackend", "registry"]
