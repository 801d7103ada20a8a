"""`get_or_set` for sync Django code with the default computed in the calling thread.

perfkit's sync facade runs a plain loader in a worker thread; for Django that is the wrong thread: the
default usually queries the database, and Django's connections (and their open transactions, and the
test case's) belong to the thread that made them, as do the active language and other thread state.
So the facade's loader here is a proxy: when this call leads the load (perfkit's single flight across
threads, its lock across processes), the proxy asks the calling thread to compute the value and waits
for it; a call that finds the value, or joins another's load, never computes at all.

    caller thread         ─ submit facade.get_or_set(key, proxy) ─▶ helper thread (blocks on the facade)
    caller thread ◀─ "compute" ─ proxy (the facade's loader thread)
    caller thread ─ value ─▶ proxy ─▶ stored ─▶ facade returns ─▶ caller thread returns it
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from perfkit.cache.sync import SyncCache

__all__ = ["get_or_set_here"]

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _helpers() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                _pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="perfkit-django-cache")
    return _pool


def get_or_set_here(
    facade: SyncCache,
    key: str,
    compute: Callable[[], Any],
    ttl: float | None,
    tags: Iterable[str] | None,
) -> Any:
    """`facade.get_or_set(key, compute, ttl, tags=tags)`, with `compute()` run in this thread."""
    mailbox: queue.SimpleQueue[queue.SimpleQueue[tuple[bool, Any]] | None] = queue.SimpleQueue()

    def proxy() -> Any:  # the facade's loader: runs in its worker thread when this call leads
        reply: queue.SimpleQueue[tuple[bool, Any]] = queue.SimpleQueue()
        mailbox.put(reply)
        ok, value = reply.get()
        if not ok:
            raise value
        return value

    done: Future[Any] = _helpers().submit(facade.get_or_set, key, proxy, ttl, tags=tags)
    done.add_done_callback(lambda _: mailbox.put(None))
    while True:
        request = mailbox.get()
        if request is None:
            return done.result()
        try:
            request.put((True, compute()))
        except BaseException as exc:  # handed to the proxy, which raises it where the facade expects it
            request.put((False, exc))
