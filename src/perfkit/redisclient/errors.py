"""redis-py's exceptions translated into perfkit's (`perfkit.errors`), in one place for every user.

    driver error                                    becomes
    -------------------------------------------     ------------------------------------------------
    any, while the task is being cancelled          asyncio.CancelledError (see perfkit.cancellation)
    ConnectionError, TimeoutError, OSError,         BackendUnavailableError (`ErrorPolicy.unavailable`)
    ClusterError, TryAgainError, SlotNotCovered,
    "cannot connect / no reachable node"
    any other RedisError / RedisClusterException    BackendError (`ErrorPolicy.failed`)

Each user words its messages (`ErrorPolicy`); the message's credentials are redacted by `PerfkitError`.
A backend names its policy once and wraps its methods with `translated` (or, on a hot path where the
wrapper's extra coroutine frame would show, ends its own `try` with `except Exception as exc:
self.translate.reraise(exc)`), instead of a translation written out per method.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Concatenate, NoReturn, ParamSpec, Protocol, TypeVar

from redis.exceptions import (
    ClusterError,
    RedisClusterException,
    RedisError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from perfkit.cancellation import cancelling
from perfkit.errors import BackendError, BackendUnavailableError

# RedisClusterException is no RedisError: the cluster client raises it when no node answers
DRIVER_ERRORS = (RedisError, RedisClusterException, OSError)
# a node or the cluster is down, failing over or moving a slot: an outage, not a bug
UNAVAILABLE = (
    RedisConnectionError,
    RedisTimeoutError,
    OSError,
    ClusterError,
    TryAgainError,
    SlotNotCoveredError,
)

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True)
class ErrorPolicy:
    """How one user of Redis words its errors. Templates take `{where}` (the redacted URL) and `{exc}`.

    `failed=None`: every driver error is an outage. `unavailable=None`: none is, all are BackendError.
    `catch_all`: any exception of the command is translated, not only the driver's.
    """

    unavailable: str | None = "Redis at {where} is unavailable: {exc}"
    failed: str | None = "Redis at {where}: {exc}"
    catch_all: bool = False


def is_driver_error(exc: BaseException) -> bool:
    """An exception of redis-py (or the socket under it), not one of the caller's."""
    return isinstance(exc, DRIVER_ERRORS) or type(exc).__module__.startswith("redis")


def is_outage(exc: BaseException) -> bool:
    """Redis (a node, the cluster) is down, unreachable or too slow: worth degrading, not a bug."""
    if isinstance(exc, UNAVAILABLE):
        return True
    if isinstance(exc, RedisClusterException):  # "cannot be connected", "no reachable node"
        text = str(exc)
        return "connect" in text or "reachable" in text
    return False


class Translator:
    """Turns an exception raised by a Redis command into the one perfkit raises (or itself, if none)."""

    __slots__ = ("policy", "where")

    def __init__(self, where: str, policy: ErrorPolicy) -> None:
        self.where = where
        self.policy = policy

    def __call__(self, exc: Exception) -> BaseException:
        policy = self.policy
        if not (policy.catch_all or is_driver_error(exc)):
            return exc
        if cancelling():  # a cancel reported as a read timeout stays a cancel (see perfkit.cancellation)
            return asyncio.CancelledError()
        outage = policy.failed is None or (policy.unavailable is not None and is_outage(exc))
        if outage and policy.unavailable is not None:
            return BackendUnavailableError(policy.unavailable.format(where=self.where, exc=exc))
        return BackendError((policy.failed or "{exc}").format(where=self.where, exc=exc))

    def reraise(self, exc: Exception) -> NoReturn:
        """Raise what `exc` translates to, chained to it (or `exc` itself); for an `except` block."""
        error = self(exc)
        if error is exc:
            raise exc
        raise error from exc

    async def call(self, awaitable: Awaitable[T]) -> T:
        """Await `awaitable`, translating what it raises."""
        try:
            return await awaitable
        except Exception as exc:
            self.reraise(exc)


class HasTranslator(Protocol):
    translate: Translator


S = TypeVar("S", bound=HasTranslator)


def translated(
    method: Callable[Concatenate[S, P], Awaitable[T]],
) -> Callable[Concatenate[S, P], Coroutine[Any, Any, T]]:
    """A backend method whose driver errors come out translated by the backend's `translate`."""

    @functools.wraps(method)
    async def wrapper(self: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await method(self, *args, **kwargs)
        except Exception as exc:
            self.translate.reraise(exc)

    return wrapper


__all__ = [
    "DRIVER_ERRORS",
    "UNAVAILABLE",
    "ErrorPolicy",
    "Translator",
    "is_driver_error",
    "is_outage",
    "translated",
]
