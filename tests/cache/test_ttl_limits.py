"""TTL validation is one check, the same on every cache backend: finite, > 0, at most ten years."""

from __future__ import annotations

from datetime import timedelta

import pytest

from perfkit import Cache, InvalidArgumentError, InvalidDurationError
from perfkit.cache.keys import MAX_TTL

from ..conftest import CacheFactory

BAD_TTLS = [float("inf"), float("nan"), 1e20, MAX_TTL + 1, 10**400, timedelta(days=20 * 365)]


@pytest.mark.parametrize("ttl", BAD_TTLS, ids=["inf", "nan", "1e20", "max+1", "huge-int", "20-years"])
async def test_out_of_range_ttl_fails_the_same_on_every_backend(cache: Cache, ttl: object) -> None:
    """NaN, infinity and TTLs over ten years raise InvalidDurationError naming the key, on every backend."""
    with pytest.raises(InvalidDurationError, match=r"ttl for key 'k'") as raised:
        await cache.set("k", 1, ttl=ttl)  # type: ignore[arg-type]
    assert isinstance(raised.value, InvalidArgumentError)
    with pytest.raises(InvalidDurationError, match=r"ttl for key 'n'"):
        await cache.incr("n", 1, ttl=ttl)  # type: ignore[arg-type]
    with pytest.raises(InvalidDurationError, match=r"ttl for key '\*'"):
        await cache.set_many({"a": 1}, ttl=ttl)  # type: ignore[arg-type]
    with pytest.raises(InvalidDurationError, match=r"stale_ttl for key 'g'"):
        await cache.get_or_set("g", lambda: 1, ttl=60, stale_ttl=ttl)  # type: ignore[arg-type]
    assert not await cache.exists("k")
    assert not await cache.exists("a")


async def test_the_maximum_ttl_is_stored_on_every_backend(cache: Cache) -> None:
    """A TTL of exactly ten years (the documented maximum) is stored and read back on every backend."""
    await cache.set("k", "v", ttl=MAX_TTL)
    await cache.set_many({"a": 1}, ttl=MAX_TTL)
    assert await cache.incr("n", 2, ttl=MAX_TTL) == 2
    assert await cache.get("k") == "v"
    assert await cache.get("a") == 1


def test_bad_default_and_l1_ttls_fail_at_construction(make_cache: CacheFactory) -> None:
    """default_ttl and l1_ttl go through the same check when the cache is made."""
    with pytest.raises(InvalidDurationError, match="default_ttl"):
        make_cache(default_ttl=float("inf"))
    with pytest.raises(InvalidDurationError, match="l1_ttl"):
        make_cache(l1_ttl=float("nan"))
