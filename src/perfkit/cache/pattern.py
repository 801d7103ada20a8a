"""The one pattern language of `Cache.delete_match`, read the same way by every backend.

    *        any run of characters, the empty one and `:` included
    ?        exactly one character
    [abc]    one character of the set; `a-z` is a range; `[!abc]` or `[^abc]` one character not in it;
             a `]` right after `[`, `[!` or `[^` is a member, not the end
    \\x       the character x itself, inside or outside a set: `\\*` matches a `*`, `\\\\` a `\\`

Everything else matches itself, case-sensitively. An unclosed `[`, a range that runs backwards or a
trailing lone `\\` is an `InvalidArgumentError`. `escape()` quotes a literal (the
cache quotes its namespace prefix with it, so any namespace works).

Backends do not translate this to their own glob dialects, which differ (Redis matches bytes and
knows `\\`; SQLite's GLOB and `fnmatch` do not): the memory tier matches with `regex`; SQLite and Redis
narrow on the server (an index range, a SCAN MATCH) with a glob matching at least the same keys, and
`matches` decides. So every backend removes exactly the same keys.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Final

from perfkit.errors import InvalidArgumentError

_SPECIAL: Final = frozenset("*?[]\\")
_REDIS_SPECIAL: Final = frozenset("*?[]\\")  # Redis glob metacharacters, quoted with a backslash
_SQLITE_SPECIAL: Final = frozenset("*?[")  # SQLite GLOB has no escape character: wrap in a set


def escape(text: str) -> str:
    """`text` as a pattern that matches exactly `text`."""
    return "".join("\\" + ch if ch in _SPECIAL else ch for ch in text)


class KeyPattern:
    """A parsed pattern: `matches(key)`, the literal `head` before its first wildcard, and the
    server-side prefilters `redis_glob` and `sqlite_glob` (each matches a superset of `matches`)."""

    __slots__ = ("head", "matches", "pattern", "redis_glob", "regex", "sqlite_glob")

    def __init__(self, pattern: str) -> None:
        if not isinstance(pattern, str) or not pattern:
            raise InvalidArgumentError(f"delete_match pattern must be a non-empty string, not {pattern!r}")
        self.pattern = pattern
        regex: list[str] = []
        redis: list[str] = []
        sqlite: list[str] = []
        head: list[str] = []
        literal_so_far = True
        i, n = 0, len(pattern)
        while i < n:
            ch = pattern[i]
            if ch == "\\":
                if i + 1 == n:
                    raise InvalidArgumentError(f"delete_match pattern {pattern!r} ends in a lone '\\'")
                ch = pattern[i + 1]
                i += 2
            elif ch in "*?[":
                if ch == "[":
                    regex.append(_parse_set(pattern, i))
                    i = _set_end(pattern, i) + 1
                else:
                    regex.append(".*" if ch == "*" else ".")
                    i += 1
                literal_so_far = False
                if not redis or redis[-1] != "*":
                    redis.append("*")
                    sqlite.append("*")
                continue
            else:
                i += 1
            regex.append(re.escape(ch))
            redis.append("\\" + ch if ch in _REDIS_SPECIAL else ch)
            sqlite.append("[" + ch + "]" if ch in _SQLITE_SPECIAL else ch)
            if literal_so_far:
                head.append(ch)
        self.regex = re.compile("".join(regex), re.DOTALL)
        self.matches = self.regex.fullmatch
        self.head = "".join(head)
        self.redis_glob = "".join(redis)
        self.sqlite_glob = "".join(sqlite)

    def __repr__(self) -> str:
        return f"KeyPattern({self.pattern!r})"


@lru_cache(maxsize=256)
def compile_pattern(pattern: str) -> KeyPattern:
    """`KeyPattern(pattern)`, cached: the same patterns come back (a cache's `clear`, coherence logs)."""
    return KeyPattern(pattern)


def _set_end(pattern: str, start: int) -> int:
    """The index of the `]` closing the set opened at `start`."""
    i = start + 1
    if i < len(pattern) and pattern[i] in "!^":
        i += 1
    first = True
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            i += 2
            first = False
            continue
        if ch == "]" and not first:
            return i
        first = False
        i += 1
    raise InvalidArgumentError(f"delete_match pattern {pattern!r} has a '[' that is never closed")


def _parse_set(pattern: str, start: int) -> str:
    """The regex character class for the set opened at `start`."""
    end = _set_end(pattern, start)
    i = start + 1
    negate = pattern[i] in "!^"
    if negate:
        i += 1
    members: list[str] = []
    while i < end:
        if pattern[i] == "\\":
            i += 1  # `_set_end` guarantees a character follows inside the set
        ch = pattern[i]
        i += 1
        if i + 1 < end and pattern[i] == "-":
            hi_at = i + 1
            if pattern[hi_at] == "\\":
                hi_at += 1
            if hi_at < end:
                hi = pattern[hi_at]
                if hi < ch:
                    raise InvalidArgumentError(
                        f"delete_match pattern {pattern!r}: the range {ch}-{hi} runs backwards"
                    )
                members.append(re.escape(ch) + "-" + re.escape(hi))
                i = hi_at + 1
                continue
        members.append(re.escape(ch))
    return "[" + ("^" if negate else "") + "".join(members) + "]"
