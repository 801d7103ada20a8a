"""`RowsChanged` and `Observers`: the public seam through which a `CacheInvalidator` tells others which
rows changed (the real-time hub's `follow_invalidations` is one listener).

An observer is called once per model per commit, after the commit and after that model's dependents
were invalidated (so a reader who reloads on the news reads fresh values): in the commit for the
`immediate` strategy, when the delayed or batched invalidation runs for the others, and `delay` seconds
after the commit for Core DML (whose engine event fires just before the database commits).
An observer that raises is logged; it never breaks the commit or the other observers.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from perfkit.cache.keys import DEPENDENCY_TAG_PREFIX
from perfkit.errors import ConfigurationError

log = logging.getLogger("perfkit.cache")


@dataclass(frozen=True)
class RowsChanged:
    """The rows of `model` a commit changed, as the invalidator knows them: its dependency tags
    (`dep:tickets`, `dep:tickets.id=7`, `dep:tickets!`; see perfkit.cache.orm.deps)."""

    model: str
    tags: frozenset[str]

    @property
    def rows(self) -> dict[str, dict[str, list[str | None]]]:
        """{table: {column: [values]}} for the primary key, foreign keys and depended-on columns, old
        and new values alike; values are strings, as they appear in the tags (NULL is None, first)."""
        out: dict[str, dict[str, set[str]]] = {}
        for tag in self.tags:
            body = tag.removeprefix(DEPENDENCY_TAG_PREFIX)
            table, dot, rest = body.partition(".")
            column, eq, value = rest.partition("=")
            if dot and eq:
                out.setdefault(table, {}).setdefault(column, set()).add(value)
        return {
            table: {col: [None if v == "None" else v for v in sorted(vals, key=_null_first)]
                    for col, vals in sorted(cols.items())}
            for table, cols in sorted(out.items())
        }  # fmt: skip

    @property
    def tables(self) -> list[str]:
        """Every table the change touched (joined inheritance: the base tables too)."""
        found = {t.removeprefix(DEPENDENCY_TAG_PREFIX).split(".", 1)[0].rstrip("!") for t in self.tags}
        return sorted(found)

    @property
    def unknown(self) -> list[str]:
        """Tables some of whose changed rows cannot be named (Core DML, an unreadable bulk write):
        a listener should treat every row of them as changed."""
        return sorted(t[len(DEPENDENCY_TAG_PREFIX) : -1] for t in self.tags if t.endswith("!"))


def _null_first(value: str) -> tuple[bool, str]:
    return value != "None", value


Observer = Callable[[RowsChanged], object]


class Observers:
    """A list of observers, safe to add to and remove from while commits notify in other threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._list: tuple[Observer, ...] = ()

    def add(self, observer: Observer) -> Callable[[], None]:
        """Add `observer`; returns a function that removes it again."""
        if not callable(observer):
            raise ConfigurationError("observer", f"{observer!r} is not a function of RowsChanged")
        with self._lock:
            self._list = (*self._list, observer)

        def remove() -> None:
            with self._lock:
                self._list = tuple(o for o in self._list if o is not observer)

        return remove

    def __bool__(self) -> bool:
        return bool(self._list)

    def notify(self, groups: Iterable[tuple[str, str, set[str]]]) -> None:
        """One `RowsChanged` per model of `groups` ((model, strategy, tags)), to every observer."""
        observers = self._list
        if not observers:
            return
        merged: dict[str, set[str]] = {}
        for model, _, tags in groups:
            merged.setdefault(str(model), set()).update(tags)  # a Core write's table name is a str subclass
        for model, tags in merged.items():
            change = RowsChanged(model, frozenset(tags))
            for observer in observers:
                try:
                    observer(change)
                except Exception:  # a listener's bug must not break the commit that fired it
                    log.exception("invalidation observer %r failed for %s", observer, model)
