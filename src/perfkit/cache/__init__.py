"""perfkit's cache: tiered (in-process L1 over a shared SQLite or Redis L2), tagged, stampede-safe."""

from perfkit.cache.cache import Cache
from perfkit.cache.config import CacheConfig
from perfkit.cache.crypto import generate_key
from perfkit.cache.decorator import CachedFunction
from perfkit.cache.keys import UNSET
from perfkit.cache.stats import CacheObserver, CacheStats, TierStats
from perfkit.cache.sync import SyncCache

__all__ = [
    "UNSET",
    "Cache",
    "CacheConfig",
    "CacheObserver",
    "CacheStats",
    "CachedFunction",
    "SyncCache",
    "TierStats",
    "generate_key",
]
