"""`Loader`: collects the `load(key)` calls of one tick (or a window) into one `batch_fn(keys)` call.

    comments = Loader(comments_by_ticket, max_batch=100)      # module level: state lives per request
    values = await asyncio.gather(*(comments.load(t.id) for t in tickets))   # one batch_fn call

Per scope (`perfkit.loader.scope`: one per request), each key is loaded once and cached for the rest of
the scope; pending keys are dispatched in priority order (critical first) in batches of at most
`max_batch`, one batch at a time, so a session-bound batch function never runs twice at once. An
optional shared cache (`cache=`, a perfkit `Cache`) keeps values across requests for `ttl` seconds,
partitioned by `partition()` (the tenant) and evicted by ORM writes through `depends_on`.
"""

from __future__ import annotations

import asyncio
import heapq
import inspect
import itertools
import time
import weakref
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from perfkit.config import parse_duration
from perfkit.errors import InvalidArgumentError
from perfkit.jobs.models import Priority
from perfkit.loader.errors import BatchResultError, LoaderCycleError, LoaderTimeoutError, NoLoaderScopeError
from perfkit.loader.scope import Scope, current_scope
from perfkit.loader.shared import SharedCache
from perfkit.loader.stats import LoaderStats
from perfkit.metrics import Collector, default_collector

__all__ = ["UNSET", "Loader", "registry"]

K = TypeVar("K")
V = TypeVar("V")
UNSET: Any = object()
_perf = time.perf_counter
_loaders: weakref.WeakValueDictionary[str, Loader[Any, Any]] = weakref.WeakValueDictionary()
BatchFn = Callable[[list[K]], Awaitable[Sequence[V] | Mapping[Any, V]] | Sequence[V] | Mapping[Any, V]]
Fallback = Callable[[K, BaseException], Any]


def registry() -> dict[str, Loader[Any, Any]]:
    """Every live loader by name (what `perfkit serve` shows in its lazy-load endpoints)."""
    return dict(_loaders.items())


_stats: dict[tuple[str, int], LoaderStats] = {}


def _stats_for(name: str, collector: Collector) -> LoaderStats:
    """One `LoaderStats` per name and collector: loaders made per request (the ORM helpers) add up."""
    key = (name, id(collector))
    found = _stats.get(key)
    if found is None or found.collector is not collector:
        found = _stats[key] = LoaderStats(name, collector)
    return found


def _consume(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()  # a preload nobody awaits: its error is counted, not logged as unretrieved


_Item = tuple[int, int, Hashable, Any, "asyncio.Future[Any]", float]  # rank, seq, cache key, key, fut, queued


class _State:
    """One loader's state in one scope: loaded keys, pending keys (a heap), the running dispatch."""

    __slots__ = ("cache", "handle", "pending", "running", "waiting")

    def __init__(self) -> None:
        self.cache: dict[Hashable, asyncio.Future[Any]] = {}
        # (rank, seq, cache key, key, future, queued at)
        self.pending: list[_Item] = []
        self.handle: asyncio.Handle | None = None
        self.running: asyncio.Task[None] | None = None
        self.waiting: set[asyncio.Task[None]] = set()  # loads waiting for their `after=` dependencies


class Loader(Generic[K, V]):
    """A batching, request-scoped loader over `batch_fn(keys) -> values` (a list in key order, or a
    mapping; a missing key is None; an exception instance as a value fails that key only)."""

    def __init__(
        self,
        batch_fn: BatchFn[K, V],
        *,
        max_batch: int = 100,
        window: float | str = "0ms",
        name: str | None = None,
        timeout: float | str | None = None,
        fallback: Any = UNSET,
        key_fn: Callable[[K], Hashable] | None = None,
        cache: Any = None,
        ttl: float | str = 60,
        depends_on: Iterable[Any] | None = None,
        partition: Callable[[], str] | None = None,
        scoped: bool = True,
        collector: Collector | None = None,
    ) -> None:
        if not callable(batch_fn):
            raise InvalidArgumentError(f"Loader batch_fn must be callable, not {type(batch_fn).__name__}")
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
            raise InvalidArgumentError(f"Loader max_batch must be an int >= 1, not {max_batch!r}")
        self.batch_fn = batch_fn
        self.max_batch = max_batch
        self.window = parse_duration("window", window, maximum=60.0)
        self.name = name or getattr(batch_fn, "__qualname__", None) or repr(batch_fn)
        self.timeout = None if timeout is None else parse_duration("timeout", timeout) or None
        self.fallback = fallback
        self.key_fn = key_fn
        self.scoped = scoped
        self.shared = (
            SharedCache(cache, self.name, parse_duration("ttl", ttl), depends_on, partition)
            if cache is not None
            else None
        )
        if cache is None and (depends_on is not None or partition is not None):
            raise InvalidArgumentError(f"loader {self.name!r}: depends_on= and partition= need cache=")
        self.stats_ = _stats_for(self.name, collector or default_collector())
        self._own = Scope()  # scoped=False: this loader's own, process-wide scope
        self._seq = itertools.count()
        self._pending = 0
        _loaders[self.name] = self

    def __repr__(self) -> str:
        return f"<Loader {self.name!r} max_batch={self.max_batch}>"

    # -- scope ----------------------------------------------------------------------------------------

    def _scope(self) -> Scope:
        if not self.scoped:
            return self._own
        found = current_scope()
        if found is None:
            raise NoLoaderScopeError(
                f"loader {self.name!r}: load() outside a request scope; wrap the work in "
                "`with perfkit.loader.scope():`, serve the app with LoaderScopeMiddleware or perfkit's "
                "middleware, or make the loader per request with scoped=False"
            )
        return found

    def _state(self, scope: Scope) -> _State:
        state = scope.states.get(self)
        if state is None:
            state = scope.states[self] = _State()
        return state

    def _cache_key(self, key: Any) -> Hashable:
        ck = key if self.key_fn is None else self.key_fn(key)
        try:
            hash(ck)
        except TypeError:
            raise InvalidArgumentError(
                f"loader {self.name!r}: key {key!r} is not hashable; give key_fn= to map it to one"
            ) from None
        return ck

    # -- the API --------------------------------------------------------------------------------------

    def load(
        self, key: K, *, priority: Priority | str | int = Priority.MEDIUM, after: Iterable[Any] = ()
    ) -> asyncio.Future[V]:
        """The value of `key` (await it). `after=` holds what must be loaded first: awaitables, or
        `(loader, key)` pairs (a cycle among those raises `LoaderCycleError` here, at the call)."""
        scope = self._scope()
        state = self._state(scope)
        ck = self._cache_key(key)
        deps = self._dependencies(scope, ck, after, priority) if after else None
        fut = state.cache.get(ck)
        if fut is not None and not fut.cancelled():
            self.stats_.load("hit")
            for d in deps or ():
                if isinstance(d, asyncio.Future):
                    d.add_done_callback(_consume)
            return fut
        rank = Priority.parse(priority) if type(priority) is not Priority else priority
        fut = asyncio.get_running_loop().create_future()
        state.cache[ck] = fut
        self.stats_.load("miss")
        if deps:
            task = asyncio.get_running_loop().create_task(self._after(state, ck, key, fut, int(rank), deps))
            state.waiting.add(task)
            task.add_done_callback(state.waiting.discard)
        else:
            self._enqueue(state, ck, key, fut, int(rank))
        return fut

    async def load_many(
        self, keys: Iterable[K], *, priority: Priority | str | int = Priority.MEDIUM
    ) -> list[V]:
        """The values of `keys`, in order, loaded in as few batches as `max_batch` allows."""
        return list(await asyncio.gather(*(self.load(k, priority=priority) for k in keys)))

    def prime(self, key: K, value: V) -> None:
        """Put `value` in this scope's cache for `key` unless it is loaded or loading already."""
        state = self._state(self._scope())
        ck = self._cache_key(key)
        if ck not in state.cache:
            fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            fut.set_result(value)
            state.cache[ck] = fut

    def preload(self, keys: Iterable[K], *, priority: Priority | str | int = Priority.LOW) -> None:
        """Start loading `keys` now (low priority by default) without waiting; later loads find them."""
        for k in keys:
            self.load(k, priority=priority).add_done_callback(_consume)

    def clear(self, key: K) -> None:
        """Forget `key` in this scope, so the next load fetches it again."""
        self._state(self._scope()).cache.pop(self._cache_key(key), None)

    def clear_all(self) -> None:
        """Forget every key of this loader in this scope."""
        self._state(self._scope()).cache.clear()

    def stats(self) -> dict[str, Any]:
        """Loads, hits and hit ratio, batches and their sizes, waits, fallbacks (JSON-able)."""
        return self.stats_.snapshot(self._pending)

    # -- dependencies ---------------------------------------------------------------------------------

    def _dependencies(
        self, scope: Scope, ck: Hashable, after: Iterable[Any], priority: Priority | str | int
    ) -> list[Awaitable[Any]]:
        node = (id(self), ck)
        deps: list[Awaitable[Any]] = []
        for item in after:
            if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], Loader):
                other, okey = item
                onode = (id(other), other._cache_key(okey))
                path = [onode] if onode == node else scope.reaches(onode, node)
                if path is not None:
                    shown = " -> ".join(repr(n[1]) for n in [node, *path])
                    raise LoaderCycleError(f"loader {self.name!r}: dependency cycle {shown}")
                scope.edges.setdefault(node, set()).add(onode)
                deps.append(other.load(okey, priority=priority))
            elif inspect.isawaitable(item):
                deps.append(item)
            else:
                raise InvalidArgumentError(
                    f"loader {self.name!r}: after= item {item!r} is neither an awaitable nor (loader, key)"
                )
        return deps

    async def _after(
        self, state: _State, ck: Hashable, key: Any, fut: asyncio.Future[Any], rank: int, deps: list[Any]
    ) -> None:
        try:
            await asyncio.gather(*deps)
        except Exception as exc:
            await self._fail(state, [(rank, 0, ck, key, fut, 0.0)], exc, "error")
            return
        self._enqueue(state, ck, key, fut, rank)

    # -- dispatch -------------------------------------------------------------------------------------

    def _enqueue(self, state: _State, ck: Hashable, key: Any, fut: asyncio.Future[Any], rank: int) -> None:
        heapq.heappush(state.pending, (rank, next(self._seq), ck, key, fut, _perf()))
        self._pending += 1
        if state.running is None and state.handle is None:
            loop = asyncio.get_running_loop()
            if self.window:
                state.handle = loop.call_later(self.window, self._start, state)
            else:
                state.handle = loop.call_soon(self._start, state)

    def _start(self, state: _State) -> None:
        state.handle = None
        state.running = asyncio.get_running_loop().create_task(self._drain(state))

    async def _drain(self, state: _State) -> None:
        try:
            pending = state.pending
            while pending:
                n = min(self.max_batch, len(pending))
                batch = [heapq.heappop(pending) for _ in range(n)]
                self._pending -= n
                await self._run(state, batch)
        finally:
            state.running = None

    async def _run(self, state: _State, batch: list[_Item]) -> None:
        started = _perf()
        waits = [started - item[5] for item in batch]
        if self.shared is not None:
            batch = await self._shared_hits(self.shared, batch)
            if not batch:
                return
        keys = [item[3] for item in batch]
        try:
            if self.timeout is None:
                values = await self._call(keys)
            else:
                async with asyncio.timeout(self.timeout) as deadline:
                    values = await self._call(keys)
        except TimeoutError as exc:
            if self.timeout is not None and deadline.expired():
                err = LoaderTimeoutError(
                    f"loader {self.name!r}: batch of {len(keys)} keys took longer than {self.timeout}s"
                )
                err.__cause__ = exc
                await self._fail(state, batch, err, "timeout")
            else:
                await self._fail(state, batch, exc, "error")
            return
        except Exception as exc:
            await self._fail(state, batch, exc, "error")
            return
        self.stats_.batch(len(batch), waits, _perf() - started)
        try:
            ordered = self._ordered(keys, batch, values)
        except BatchResultError as exc:
            await self._fail(state, batch, exc, "error")
            return
        await self._resolve(state, batch, ordered)

    async def _shared_hits(self, shared: SharedCache, batch: list[_Item]) -> list[_Item]:
        """Answer the keys the shared cache holds; the rest, to load."""
        found = await shared.get([item[2] for item in batch])
        if not found:
            return batch
        for item in batch:
            if item[2] in found and not item[4].done():
                item[4].set_result(found[item[2]])
                self.stats_.load("shared_hit")
        return [item for item in batch if item[2] not in found]

    async def _resolve(self, state: _State, batch: list[_Item], values: list[Any]) -> None:
        failed = []
        loaded: dict[Hashable, Any] = {}
        for item, value in zip(batch, values, strict=True):
            if isinstance(value, BaseException):
                failed.append((item, value))
            elif not item[4].done():
                item[4].set_result(value)
                loaded[item[2]] = value
        for item, error in failed:
            await self._fail(state, [item], error, "error")
        if self.shared is not None and loaded:
            await self.shared.set(loaded)

    async def _call(self, keys: list[Any]) -> Any:
        result = self.batch_fn(keys)
        if inspect.isawaitable(result):
            result = await result
        return result

    def _ordered(self, keys: list[Any], batch: list[Any], values: Any) -> list[Any]:
        if isinstance(values, Mapping):
            return [values.get(item[2], values.get(item[3])) for item in batch]
        if isinstance(values, str | bytes) or not isinstance(values, Sequence):
            raise BatchResultError(
                f"loader {self.name!r}: batch_fn returned {type(values).__name__}; "
                "return a list (one value per key, in order) or a mapping"
            )
        if len(values) != len(keys):
            raise BatchResultError(
                f"loader {self.name!r}: batch_fn returned {len(values)} values for {len(keys)} keys"
            )
        return list(values)

    async def _fail(self, state: _State, batch: list[Any], exc: BaseException, reason: str) -> None:
        fell_back = 0
        for _, _, ck, key, fut, _ in batch:
            if state.cache.get(ck) is fut:
                del state.cache[ck]  # not cached: the next load of the key tries again
            if fut.done():
                continue
            if self.fallback is UNSET:
                fut.set_exception(exc)
                continue
            try:
                value = self.fallback(key, exc) if callable(self.fallback) else self.fallback
                if inspect.isawaitable(value):
                    value = await value
            except Exception as error:
                fut.set_exception(error)
                continue
            fell_back += 1
            if not fut.done():
                fut.set_result(value)
        self.stats_.failure(reason, fell_back)
