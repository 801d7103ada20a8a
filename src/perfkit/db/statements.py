"""Statement text helpers: the shape of a statement (for EXPLAIN-once), redacted parameters, and the
columns of sort keys and equality filters (for index suggestions)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

from perfkit.redaction import redact as redact_credentials

_SPACE = re.compile(r"\s+")
_IN_LIST = re.compile(r"\((?:\s*(?:\?|%s|%\(\w+\)s|\$\d+|:\w+)\s*,)+\s*(?:\?|%s|%\(\w+\)s|\$\d+|:\w+)\s*\)")
_LITERAL = re.compile(r"'(?:[^']|'')*'|\b\d+(?:\.\d+)?\b")
_MAX_STATEMENT = 2000
_SORT_KEY = re.compile(
    r'^\(*"?(?:(\w+)"?\.)?"?(\w+)"?\)*(\s+(?:ASC|DESC))?(\s+NULLS\s+(?:FIRST|LAST))?$', re.I
)
_EQUALS = re.compile(r"\(*\"?(?:(\w+)\"?\.)?\"?(\w+)\"?\)?(?:::[\w ]+)?\s*=\s")


def shape(statement: str) -> str:
    """The statement with literals, IN-lists and whitespace normalized: one shape per query kind."""
    text = _SPACE.sub(" ", statement.strip())
    text = _LITERAL.sub("?", text)
    return _IN_LIST.sub("(?...)", text)


def shape_id(shape_text: str) -> str:
    """A short id of a statement shape, the same in every process (the label findings are grouped by)."""
    return hashlib.blake2b(shape_text.encode("utf-8", "replace"), digest_size=6).hexdigest()


def clip(statement: str) -> str:
    """The statement as findings and logs show it: one line, credentials redacted, at most 2,000 chars."""
    text = redact_credentials(_SPACE.sub(" ", statement.strip()))
    return text if len(text) <= _MAX_STATEMENT else text[:_MAX_STATEMENT] + "..."


def _redact_value(value: Any) -> str:
    if value is None:
        return "NULL"
    return f"<{type(value).__name__}>"


def redact(parameters: Any, show: bool = False) -> Any:
    """Parameters with every value replaced by its type (`<str>`), unless `show` is set."""
    if show:
        return _plain(parameters)
    if isinstance(parameters, Mapping):
        return {str(k): _redact_value(v) for k, v in list(parameters.items())[:100]}
    if isinstance(parameters, Sequence) and not isinstance(parameters, str | bytes):
        if (
            parameters
            and isinstance(parameters[0], Mapping | Sequence)
            and not isinstance(parameters[0], str | bytes)
        ):
            return [redact(p) for p in parameters[:3]] + (["..."] if len(parameters) > 3 else [])
        return [_redact_value(v) for v in parameters[:100]]
    return _redact_value(parameters)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, int | float | str | bool):
        return value
    return repr(value)


def params_key(statement: str, parameters: Any) -> int | None:
    """A hash of statement and parameters for spotting identical repeated queries; None if unhashable."""
    try:
        if isinstance(parameters, Mapping):
            return hash((statement, tuple(parameters.items())))
        if isinstance(parameters, list):
            return hash((statement, tuple(parameters)))
        return hash((statement, parameters))
    except TypeError:
        return None


def sort_columns(keys: list[str], tables: set[str | None]) -> list[str] | None:
    """`Sort Key` entries as index columns (`created_at DESC`), or None when one is an expression or
    belongs to another table (an index on this table cannot give that order)."""
    out: list[str] = []
    for key in keys:
        match = _SORT_KEY.match(key.strip())
        if match is None or (match.group(1) is not None and match.group(1) not in tables):
            return None
        direction = (match.group(3) or "").upper().strip()
        nulls = " ".join((match.group(4) or "").upper().split())
        parts = (match.group(2), "" if direction == "ASC" else direction, nulls)
        out.append(" ".join(part for part in parts if part))
    return out or None


def equality_columns(condition: str, tables: set[str | None]) -> list[str]:
    """The columns of this table a filter compares with `=` (they go before the sort key)."""
    out: list[str] = []
    for match in _EQUALS.finditer(condition):
        if match.group(1) is not None and match.group(1) not in tables:
            continue
        if match.group(2) not in out and not match.group(2).isdigit():
            out.append(match.group(2))
    return out
