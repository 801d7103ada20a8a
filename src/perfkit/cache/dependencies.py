"""The warning for values that depend on database rows nobody invalidates.

`DependencyWatch(prefix, namespace, invalidators=None)`:

- `invalidators`: the `CacheInvalidator`s that evict this cache's ORM dependents on commit (a WeakSet
  shared by a cache and its siblings; `Cache.add_invalidator` adds to it).
- `armed`: True until the warning was given (callers skip `check` once it is False: the write path).
- `check(tags, key)`: warn once when `tags` (namespaced) hold a dependency tag and no invalidator watches.
"""

from __future__ import annotations

import logging
import weakref
from typing import Any

from perfkit.cache.keys import DEPENDENCY_TAG_PREFIX

__all__ = ["DependencyWatch"]

log = logging.getLogger("perfkit.cache")


class DependencyWatch:
    """Warns once per engine that a value depending on ORM rows is cached with no invalidator."""

    def __init__(self, prefix: str, namespace: str, invalidators: weakref.WeakSet[Any] | None = None) -> None:
        self.prefix = prefix
        self.namespace = namespace
        self.invalidators: weakref.WeakSet[Any] = (
            invalidators if invalidators is not None else weakref.WeakSet()
        )
        self.armed = True
        self._tag = prefix + DEPENDENCY_TAG_PREFIX

    def check(self, tags: tuple[str, ...], key: str) -> None:
        """Warn once when a value depending on ORM rows is cached and no invalidator watches them."""
        if not self.armed or not tags or self.invalidators:
            return
        dep = next((t for t in tags if t.startswith(self._tag)), None)
        if dep is None:
            return
        self.armed = False
        log.warning(
            "cache %r: key %r depends on database rows (tag %r) but no CacheInvalidator watches "
            "this cache, so commits will not evict it and it is served stale until its TTL. Pass "
            "engine= to perfkit.instrument(app, cache=..., engine=...) or wire "
            "perfkit.cache.orm.CacheInvalidator(cache).instrument(sessionmaker) (warned once per cache)",
            self.namespace,
            key,
            dep[len(self.prefix) :],
        )
