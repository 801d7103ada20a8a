"""delete_match: one pattern language, the same keys removed on every backend of the matrix."""

from __future__ import annotations

import uuid

import pytest

from perfkit import InvalidArgumentError
from perfkit.cache.pattern import KeyPattern, escape
from tests.conftest import CacheFactory

KEYS = ["x*", "xy", "x?", "x\\y", "x[1]", "x1", "x]", "é1", "éé", "x:1:y", "y"]
CASES = [
    ("x\\*", {"x*"}),
    ("x*", {"x*", "xy", "x?", "x\\y", "x[1]", "x1", "x]", "x:1:y"}),
    ("x?", {"x*", "xy", "x?", "x1", "x]"}),
    ("x\\?", {"x?"}),
    ("x\\\\y", {"x\\y"}),
    ("x[1y]", {"xy", "x1"}),
    ("x[!1y*?\\\\[]", {"x]"}),
    ("x[^a-z0-9]", {"x*", "x?", "x]"}),
    ("x]", {"x]"}),
    ("x[]]", {"x]"}),
    ("x\\[1\\]", {"x[1]"}),
    ("?1", {"x1", "é1"}),  # one character, not one byte (é is two bytes in Redis)
    ("é?", {"é1", "éé"}),
    ("*:1:*", {"x:1:y"}),
    ("[a-x]*", {"x*", "xy", "x?", "x\\y", "x[1]", "x1", "x]", "x:1:y"}),
]


@pytest.mark.parametrize(("pattern", "removed"), CASES, ids=[c[0] for c in CASES])
async def test_pattern_removes_the_same_keys_everywhere(
    make_cache: CacheFactory, pattern: str, removed: set[str]
) -> None:
    """Each pattern removes exactly the documented keys on memory, SQLite, Redis, Cluster and tiers."""
    cache = make_cache()
    await cache.set_many({k: k for k in KEYS}, ttl=60)
    assert await cache.delete_match(pattern) == len(removed)
    assert set(await cache.get_many(KEYS)) == set(KEYS) - removed


@pytest.mark.parametrize("special", ["]", "[", "\\", "*", "?", "[a]", "{x}", "]\\["])
async def test_namespace_with_glob_characters_is_matched_literally(
    make_cache: CacheFactory, special: str
) -> None:
    """A namespace holding `]`, `[`, `\\`, `*`, `?` or braces gets its keys removed, and no other's."""
    base = f"ns{uuid.uuid4().hex[:8]}"
    cache = make_cache(namespace=base + special)
    sibling = make_cache(namespace=base + "x")  # what a wildcard namespace prefix would also match
    await cache.set_many({"user:1": 1, "user:2": 2, "post:1": 3}, ttl=60)
    await sibling.set_many({"user:1": 1}, ttl=60)
    assert await cache.delete_match("user:*") == 2
    assert await cache.get_many(["user:1", "user:2", "post:1"]) == {"post:1": 3}
    assert await sibling.get("user:1") == 1
    assert await cache.clear() == 1
    assert await sibling.get("user:1") == 1


@pytest.mark.parametrize("pattern", ["x[", "x[]", "x\\", "[z-a]", "x[!"])
async def test_malformed_pattern_is_refused_by_name(make_cache: CacheFactory, pattern: str) -> None:
    """An unclosed set, a trailing backslash or a backwards range is an error naming the pattern."""
    cache = make_cache()
    await cache.set("x[", 1)
    with pytest.raises(InvalidArgumentError, match="delete_match pattern"):
        await cache.delete_match(pattern)
    assert await cache.get("x[") == 1


def test_escape_quotes_every_metacharacter() -> None:
    """escape(text) is a pattern matching exactly text, whatever characters it holds."""
    text = "a*b?c[d]e\\f!^-{g}"
    pattern = KeyPattern(escape(text))
    assert pattern.matches(text)
    assert not pattern.matches(text + "x")
    assert pattern.head == text
