"""`CacheConfig`: a cache's settings resolved once, from arguments, `PERFKIT_CACHE_*` and defaults."""

from __future__ import annotations

import pytest

from perfkit.cache import Cache, CacheConfig
from perfkit.errors import ConfigurationError


def test_environment_fills_what_is_not_passed(monkeypatch: pytest.MonkeyPatch) -> None:
    """PERFKIT_CACHE_* variables fill unset settings; explicit arguments win over them."""
    monkeypatch.setenv("PERFKIT_CACHE_NAMESPACE", "from-env")
    monkeypatch.setenv("PERFKIT_CACHE_DEFAULT_TTL", "2m")
    monkeypatch.setenv("PERFKIT_CACHE_ON_ERROR", "raise")
    config = CacheConfig.resolve("memory://", default_ttl=5)
    assert (config.namespace, config.default_ttl, config.on_error) == ("from-env", 5.0, "raise")
    assert CacheConfig.resolve().default_ttl == 120.0


def test_defaults_without_arguments_or_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without arguments or variables: memory://, namespace "default", 300 s, zstd, 0.5 s, degrade."""
    for name in ("URL", "NAMESPACE", "DEFAULT_TTL", "COMPRESSION", "TIMEOUT", "ON_ERROR"):
        monkeypatch.delenv(f"PERFKIT_CACHE_{name}", raising=False)
    config = CacheConfig.resolve()
    assert (config.url, config.namespace, config.default_ttl) == ("memory://", "default", 300.0)
    assert (config.compression, config.timeout, config.on_error) == ("zstd", 0.5, "degrade")


def test_bad_setting_is_named() -> None:
    """A bad value is refused when the config is resolved, naming the setting."""
    with pytest.raises(ConfigurationError, match="on_error"):
        CacheConfig.resolve(on_error="explode")
    with pytest.raises(ConfigurationError, match="l1"):
        CacheConfig.resolve("memory://", l1="memory://")


async def test_from_config_and_sibling_share_the_resolved_config() -> None:
    """`Cache.from_config` uses a resolved config as is; a sibling shares it, its L1 and its stats."""
    config = CacheConfig.resolve("memory://", namespace="cfg-test")
    cache = Cache.from_config(config)
    assert cache.config is config and cache.namespace == "cfg-test"
    await cache.set("k", 1)
    sibling = cache.sibling()
    assert sibling.config is config
    assert await sibling.get("k") == 1  # the same L1
    assert cache.stats().tiers["l1"].hits == 1  # counted in the shared statistics
    await sibling.close()
    await cache.close()


async def test_an_observer_added_later_sees_the_siblings_operations() -> None:
    """`add_observer` on a cache also reaches siblings made before it (the sync facade's cache)."""
    cache = Cache("memory://", namespace="cfg-observer")
    sibling = cache.sibling()
    seen: list[tuple[str, str, str]] = []
    cache.add_observer(lambda ns, tier, op, outcome, seconds: seen.append((tier, op, outcome)))
    await sibling.set("k", 1)
    assert await sibling.get("k") == 1
    assert ("l1", "set", "ok") in seen and ("l1", "get", "hit") in seen
    await sibling.close()
    await cache.close()
