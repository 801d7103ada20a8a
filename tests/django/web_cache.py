"""A test-only Django cache backend over a perfkit `Cache`, exposing it as `perfkit_cache` (the contract
dj-cache's `perfkit.django.cache.PerfkitCache` keeps), for the response-cache tests of the middleware."""

from __future__ import annotations

from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache

from perfkit.cache import Cache


class PerfkitTestCache(BaseCache):
    def __init__(self, location: str, params: dict[str, Any]) -> None:
        super().__init__(params)
        self.perfkit_cache = Cache(location or "memory://")

    def get(self, key: str, default: Any = None, version: int | None = None) -> Any:
        return self.perfkit_cache.sync.get(self.make_key(key, version), default)

    def set(self, key: str, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> None:
        """Django's timeout as perfkit's ttl in seconds (not `get_backend_timeout`, an absolute expiry
        time): the alias's TIMEOUT by default, None for no expiry, 0 or less for not kept at all."""
        if timeout is DEFAULT_TIMEOUT:
            timeout = self.default_timeout
        if timeout is not None and timeout <= 0:
            self.delete(key, version)
            return
        self.perfkit_cache.sync.set(self.make_key(key, version), value, ttl=timeout)

    def delete(self, key: str, version: int | None = None) -> bool:
        return bool(self.perfkit_cache.sync.delete(self.make_key(key, version)))

    def clear(self) -> None:
        self.perfkit_cache.sync.clear()
