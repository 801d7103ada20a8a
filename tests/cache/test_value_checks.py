"""The memory tier's explicit by-reference mode (`check_values=False`) and its limits."""

from __future__ import annotations

import pytest

from perfkit import Cache, ConfigurationError
from tests.conftest import REDIS_URL


async def test_check_values_false_keeps_any_object_by_reference() -> None:
    """check_values=False on memory:// stores any object of any size, and returns that very object."""
    cache = Cache("memory://", check_values=False, max_value_size=10)
    marker = object()
    await cache.set("obj", marker)
    await cache.set_many({"big": "x" * 100})
    assert await cache.get("obj") is marker
    assert await cache.get("big") == "x" * 100
    await cache.close()


async def test_checked_memory_still_returns_the_stored_object() -> None:
    """The default memory tier checks the value but keeps (and returns) the object, not a copy."""
    cache = Cache("memory://")
    value = {"a": [1, 2]}
    await cache.set("k", value)
    assert await cache.get("k") is value
    await cache.close()


@pytest.mark.parametrize("url", ["sqlite:///unused.db", REDIS_URL])
def test_check_values_false_needs_a_memory_cache(url: str) -> None:
    """check_values=False with an L2 is a ConfigurationError naming the setting (an L2 must serialize)."""
    with pytest.raises(ConfigurationError, match="check_values"):
        Cache(url, check_values=False)


def test_check_values_must_be_a_bool() -> None:
    """A non-bool check_values is refused by name rather than read as truthy."""
    with pytest.raises(ConfigurationError, match="check_values"):
        Cache("memory://", check_values="no")  # type: ignore[arg-type]
