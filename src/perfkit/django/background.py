"""perfkit's one event loop in a Django process, for the async parts a WSGI project has no loop for.

The monitor (publishing to its shared store, the endpoints' handlers) and a Redis rate limiter are async;
their connections belong to the loop that opened them. Under WSGI there is no loop, and under ASGI the
test client and the server may each bring their own, so these parts always run on this one background
loop (perfkit's `Portal`, a daemon thread), started on first use, never at import. A forked worker
(gunicorn's `--preload`) gets a new one: the parent's thread does not survive the fork.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

from perfkit.errors import ConfigurationError
from perfkit.syncfacade import Portal

__all__ = ["call", "drive", "loop", "run", "stop"]

T = TypeVar("T")
_portal: list[Portal] = []


def _forget() -> None:
    _portal.clear()


os.register_at_fork(after_in_child=_forget)


def _get() -> Portal:
    if not _portal:
        _portal.append(Portal("perfkit-django"))
    return _portal[0]


def loop() -> asyncio.AbstractEventLoop:
    """The background loop (started on first use)."""
    return _get().loop


def call(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` on the background loop from synchronous code and wait for its result."""
    return _get().call(coro)


async def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` on the background loop from async code (any other loop) and await its result."""
    future = asyncio.run_coroutine_threadsafe(coro, _get().loop)
    return await asyncio.wrap_future(future)


def stop() -> None:
    """Stop the background loop (a later call starts a new one)."""
    if _portal:
        _portal.pop().close()


def drive(coro: Coroutine[Any, Any, T], setting: str) -> T:
    """Run, in this thread and without a loop, a coroutine that never suspends (perfkit.web's cache key,
    the in-process rate limiter: async only for the user and key functions that may be); a coroutine
    that does suspend is refused, naming the `setting` whose function made it wait."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]  # the coroutine's return value
    coro.close()
    raise ConfigurationError(setting, "under WSGI this function must return its value, not wait for it")
