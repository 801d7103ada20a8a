"""Cache backends by URL scheme. Drivers are imported on first use, with the install hint if missing."""

from __future__ import annotations

from perfkit.backends import Registry
from perfkit.cache.backends.base import CacheBackend

registry: Registry[CacheBackend] = Registry("cache")
registry.register("memory", "perfkit.cache.backends.memory:MemoryBackend")
registry.register("sqlite", "perfkit.cache.backends.sqlite:SQLiteBackend")
registry.register("redis", "perfkit.cache.backends.redis:RedisBackend", extra="redis")
registry.register("rediss", "perfkit.cache.backends.redis:RedisBackend", extra="redis")
registry.register("unix", "perfkit.cache.backends.redis:RedisBackend", extra="redis")
registry.register("redis+cluster", "perfkit.cache.backends.redis_cluster:RedisClusterBackend", extra="redis")
registry.register("rediss+cluster", "perfkit.cache.backends.redis_cluster:RedisClusterBackend", extra="redis")

__all__ = ["CacheBackend", "registry"]
