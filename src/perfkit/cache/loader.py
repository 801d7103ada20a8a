"""The loader: what `get_or_set` and `@cached` do past a fresh L1 hit.

One path: `load` answers a stale L1 item at once and refreshes it in the background, else joins or
starts the one flight for the key (single flight per process), which reads L2 and, on a miss, takes
the cross-process lock (with a shared L2), reads L2 again in case the lock holder filled it, and runs
the loader. The tag versions read before loading guard the write (the stale-set guard: a value whose
tags were invalidated while it loaded is not stored).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from perfkit.cache.keys import TTL, ttl_seconds
from perfkit.cache.tiers import Tiers
from perfkit.errors import BackendError

log = logging.getLogger("perfkit.cache")
_monotonic = time.monotonic
_MISSING: Any = object()

Tags = Iterable[str] | Callable[[Any], Iterable[str]] | None


@dataclass(frozen=True)
class LoadOptions:
    key: str  # as the caller wrote it, for error messages
    ttl: float | None
    tags: tuple[str, ...]
    stale_ttl: float | None
    sensitive: bool
    serve_stale_on_error: bool
    tags_of: Callable[[Any], Iterable[str]] | None = None  # tags known only from the loaded value


class Loader:
    """Single flight, the cross-process lock, stale refresh and the stale-set guard over `tiers`."""

    def __init__(self, tiers: Tiers, lock_timeout: float) -> None:
        self.tiers = tiers
        self.lock_timeout = lock_timeout
        self._inflight: dict[str, asyncio.Task[Any]] = {}
        self._refreshing: dict[str, asyncio.Task[Any]] = {}
        self._background: set[asyncio.Task[Any]] = set()

    def options(
        self, key: str, ttl: object, tags: Tags, stale_ttl: TTL, sensitive: bool, serve_stale_on_error: bool
    ) -> LoadOptions:
        """The checked options of one load (`key` as the caller wrote it)."""
        tags_of = tags if callable(tags) else None
        return LoadOptions(
            key,
            self.tiers.ttl(ttl, key),
            () if tags_of is not None else self.tiers.tags(tags, key),  # type: ignore[arg-type]  # not callable
            ttl_seconds(stale_ttl, key, "stale_ttl"),
            sensitive,
            serve_stale_on_error,
            tags_of,
        )

    async def load(
        self,
        k: str,
        key: str,
        loader: Callable[[], Any],
        ttl: object,
        tags: Tags,
        stale_ttl: TTL,
        sensitive: bool,
        serve_stale_on_error: bool,
    ) -> Any:
        """The value of stored name `k` (`key` as the caller wrote it) when L1 had no fresh item."""
        item = self.tiers.peek(k)
        if item is not None:  # stale: answer now, refresh once in the background
            self._refresh(
                k,
                loader,
                self.options(key, ttl, tags, stale_ttl, sensitive, serve_stale_on_error),
                item.value,
            )
            return item.value
        task = self._inflight.get(k)
        if task is None:
            opts = self.options(key, ttl, tags, stale_ttl, sensitive, serve_stale_on_error)
            task = self._start(k, self._fetch(k, loader, opts))
        # shield: a caller that is cancelled (its client went away) must not cancel everyone's load
        return await asyncio.shield(task)

    async def _fetch(self, k: str, loader: Callable[[], Any], opts: LoadOptions) -> Any:
        """One per key at a time: the L2 read (so 1,000 callers make one round trip), then the load."""
        found, value, fresh = await self.tiers.read(k)
        if found:
            if not fresh:
                self._refresh(k, loader, opts, value)
            return value
        return await self._locked(k, loader, opts, _MISSING)

    def _start(self, k: str, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._inflight[k] = task

        def done(t: asyncio.Task[Any]) -> None:
            if self._inflight.get(k) is t:
                del self._inflight[k]

        task.add_done_callback(done)
        return task

    def _refresh(self, k: str, loader: Callable[[], Any], opts: LoadOptions, stale: Any) -> None:
        # kept apart from _inflight: readers of a stale value must not queue behind its refresh
        if k in self._refreshing:
            return
        task = asyncio.ensure_future(self._locked(k, loader, opts, stale))
        self._refreshing[k] = task
        self._background.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._background.discard(t)
            if self._refreshing.get(k) is t:
                del self._refreshing[k]
            if not t.cancelled() and t.exception() is not None:
                log.warning(
                    "cache %r: background refresh of %r failed: %s", self.tiers.namespace, k, t.exception()
                )

        task.add_done_callback(done)

    async def _locked(self, k: str, loader: Callable[[], Any], opts: LoadOptions, stale: Any) -> Any:
        """Run the loader under the cross-process lock of a shared L2 (directly without one)."""
        tiers = self.tiers
        l2 = tiers.l2
        if l2 is None or not l2.shared or tiers.health.skip():
            return await self._run(k, loader, opts, stale)
        token = secrets.token_hex(8)
        deadline = _monotonic() + 2 * self.lock_timeout
        delay = 0.002
        while True:
            try:
                got = await l2.acquire_lock(k, token, self.lock_timeout)
            except BackendError as exc:
                tiers.failed(exc, "lock")
                return await self._run(k, loader, opts, stale)
            if got:
                try:
                    if stale is _MISSING:  # someone may have filled it while we queued for the lock
                        found, value, fresh = await tiers.read(k)
                        if found and fresh:
                            return value
                    return await self._run(k, loader, opts, stale)
                finally:
                    with contextlib.suppress(BackendError):
                        await l2.release_lock(k, token)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)
            found, value, fresh = await tiers.read(k)
            if found and fresh:
                return value
            if _monotonic() > deadline:  # the holder is stuck: load rather than wait forever
                return await self._run(k, loader, opts, stale)

    async def _run(self, k: str, loader: Callable[[], Any], opts: LoadOptions, stale: Any) -> Any:
        """Call the loader and store its value, unless its tags were invalidated meanwhile."""
        tiers = self.tiers
        expect = await tiers.tag_versions(opts.tags)
        try:
            value = loader()
            if inspect.isawaitable(value):
                value = await value
        except Exception:
            if opts.serve_stale_on_error and stale is not _MISSING:
                log.warning(
                    "cache %r: loader for %r failed; serving the stale value",
                    tiers.namespace,
                    k,
                    exc_info=True,
                )
                return stale
            raise
        tags = opts.tags if opts.tags_of is None else tiers.tags(opts.tags_of(value), opts.key)
        await tiers.write(
            k, value, opts.ttl, tags, opts.stale_ttl, opts.sensitive, name=opts.key, expect=expect
        )
        return value

    async def close(self) -> None:
        """Cancel the loads and refreshes in flight and wait for them to end."""
        tasks = list(self._background) + list(self._inflight.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
