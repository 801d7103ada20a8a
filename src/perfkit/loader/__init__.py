"""Batching, request-scoped lazy loaders (a DataLoader for Python), with priorities, dependencies,
fallbacks, preloading, an optional shared cache invalidated by ORM writes, and metrics.

    from perfkit.loader import Loader, scope

    async def users_by_id(ids: list[int]) -> list[User | None]: ...
    users = Loader(users_by_id, max_batch=100)

    with scope():                      # one per request (LoaderScopeMiddleware, perfkit's middleware)
        a, b = await asyncio.gather(users.load(1), users.load(2))   # one users_by_id([1, 2]) call

SQLAlchemy: `relationship_loader(session, Ticket.comments)` and `keyed_loader(session, User.id)` build one
for a relationship or a keyed lookup (perfkit.loader.orm). See docs/loader.md.
"""

from typing import TYPE_CHECKING, Any

from perfkit.loader.core import UNSET, Loader, registry
from perfkit.loader.errors import (
    BatchResultError,
    LoaderCycleError,
    LoaderError,
    LoaderTimeoutError,
    NoLoaderScopeError,
)
from perfkit.loader.scope import LoaderScopeMiddleware, Scope, current_scope, scope

if TYPE_CHECKING:
    from perfkit.loader.orm import keyed_loader, relationship_loader

__all__ = [
    "UNSET",
    "BatchResultError",
    "Loader",
    "LoaderCycleError",
    "LoaderError",
    "LoaderScopeMiddleware",
    "LoaderTimeoutError",
    "NoLoaderScopeError",
    "Scope",
    "current_scope",
    "keyed_loader",
    "registry",
    "relationship_loader",
    "scope",
]


def __getattr__(name: str) -> Any:
    """The SQLAlchemy helpers import SQLAlchemy: only when asked for."""
    if name in ("keyed_loader", "relationship_loader"):
        from perfkit.loader import orm

        return getattr(orm, name)
    raise AttributeError(f"module 'perfkit.loader' has no attribute {name!r}")
