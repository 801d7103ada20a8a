"""One loader's state in one scope: the keys it loaded, the keys pending (a list per priority), and its
running dispatch (`ScopeState`, kept in `Scope.states` by `Loader`)."""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from typing import Any

from perfkit.jobs.models import Priority

__all__ = ["RANKS", "Item", "ScopeState"]

Item = tuple[Hashable, Any, "asyncio.Future[Any]"]  # cache key, key, future
RANKS = len(Priority)


class ScopeState:
    """One loader's state in one scope: loaded keys, pending keys (a list per priority), the dispatch."""

    __slots__ = ("cache", "count", "handle", "loop", "pending", "running", "since", "waiting")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.cache: dict[Hashable, asyncio.Future[Any]] = {}
        self.pending: list[list[Item]] = [[] for _ in range(RANKS)]  # by rank: critical first, FIFO
        self.count = 0  # keys pending
        self.since = 0.0  # when the oldest pending key was queued
        self.handle: asyncio.Handle | None = None
        self.running: asyncio.Task[None] | None = None
        self.waiting: set[asyncio.Task[None]] = set()  # loads waiting for their `after=` dependencies

    def take(self, n: int) -> list[Item]:
        """The `n` highest-priority pending keys, oldest first within a priority."""
        out: list[Item] = []
        for rank in self.pending:
            if rank:
                room = n - len(out)
                out += rank[:room]
                del rank[:room]
                if len(out) == n:
                    break
        self.count -= len(out)
        return out
