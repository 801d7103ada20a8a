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
import inspect
import time
import weakref
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from perfkit.config import parse_duration
from perfkit.errors import InvalidArgumentError
from perfkit.jobs.models import Priority
from perfkit.loader.errors import BatchResultError, LoaderCycleError, LoaderTimeoutError, NoLoaderScopeError
from perfkit.loader.scope import Scope, current_scope, explicit_scope
from perfkit.loader.shared import SharedCache
from perfkit.loader.state import Item, ScopeState
from perfkit.loader.stats import LoaderStats
from perfkit.metrics import Collector

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


def _stats_for(name: str, collector: Collector | None) -> LoaderStats:
    """One `LoaderStats` per name and collector: loaders made per request (the ORM helpers) add up."""
    key = (name, id(collector))
    found = _stats.get(key)
    if found is None or found.collector is not collector:
        found = _stats[key] = LoaderStats(name, collector)
    return found


def _consume(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()  # a preload nobody awaits: its error is counted, not logged as unretrieved


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
        self.stats_ = _stats_for(self.name, collector)  # None: perfkit's default collector, at first use
        self._own = Scope()  # scoped=False: this loader's own, process-wide scope
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

    def _state(self, scope: Scope) -> ScopeState:
        state = scope.states.get(self)
        if state is None:
            state = scope.states[self] = ScopeState(asyncio.get_running_loop())
        return state

    def _cache_key(self, key: Any) -> Hashable:
        ck = key if self.key_fn is None else self.key_fn(key)
        try:
            hash(ck)
        except TypeError:
            raise self._unhashable(key) from None
        return ck

    def _unhashable(self, key: Any) -> InvalidArgumentError:
        return InvalidArgumentError(
            f"loader {self.name!r}: key {key!r} is not hashable; give key_fn= to map it to one"
        )

    # -- the API --------------------------------------------------------------------------------------

    def load(
        self, key: K, *, priority: Priority | str | int = Priority.MEDIUM, after: Iterable[Any] = ()
    ) -> asyncio.Future[V]:
        """The value of `key` (await it). `after=` holds what must be loaded first: awaitables, or
        `(loader, key)` pairs (a cycle among those raises `LoaderCycleError` here, at the call)."""
        scope = self._own if not self.scoped else (explicit_scope() or self._scope())
        state = scope.states.get(self) or self._state(scope)
        ck = key if self.key_fn is None else self.key_fn(key)
        deps = self._dependencies(scope, ck, after, priority) if after else None
        try:
            fut = state.cache.get(ck)
        except TypeError:
            raise self._unhashable(key) from None
        if fut is not None and not fut.cancelled():
            self.stats_.hits += 1  # the hot path: the collector is told at the next batch or stats()
            for d in deps or ():
                if isinstance(d, asyncio.Future):
                    d.add_done_callback(_consume)
            return fut
        rank = priority if type(priority) is Priority else Priority.parse(priority)
        fut = state.loop.create_future()
        state.cache[ck] = fut
        if deps:
            task = state.loop.create_task(self._after(state, ck, key, fut, rank, deps))
            state.waiting.add(task)
            task.add_done_callback(state.waiting.discard)
        else:
            self._enqueue(state, ck, key, fut, rank)
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
        self, state: ScopeState, ck: Hashable, key: Any, fut: asyncio.Future[Any], rank: int, deps: list[Any]
    ) -> None:
        try:
            await asyncio.gather(*deps)
        except Exception as exc:
            self.stats_.missed(1)
            await self._fail(state, [(ck, key, fut)], exc, "error")
            return
        self._enqueue(state, ck, key, fut, rank)

    # -- dispatch -------------------------------------------------------------------------------------

    def _enqueue(
        self, state: ScopeState, ck: Hashable, key: Any, fut: asyncio.Future[Any], rank: int
    ) -> None:
        if not state.count:
            state.since = _perf()
        state.pending[rank].append((ck, key, fut))
        state.count += 1
        self._pending += 1
        if state.running is None and state.handle is None:
            if self.window:
                state.handle = state.loop.call_later(self.window, self._start, state)
            else:
                state.handle = state.loop.call_soon(self._start, state)

    def _start(self, state: ScopeState) -> None:
        state.handle = None
        state.running = state.loop.create_task(self._drain(state))

    async def _drain(self, state: ScopeState) -> None:
        try:
            while state.count:
                since = state.since
                batch = state.take(self.max_batch)
                state.since = _perf()  # what stays pending waits from now on
                self._pending -= len(batch)
                await self._run(state, batch, since)
        finally:
            state.running = None

    async def _run(self, state: ScopeState, batch: list[Item], since: float) -> None:
        started = _perf()
        self.stats_.missed(len(batch))
        if self.shared is not None:
            batch = await self._shared_hits(self.shared, batch)
            if not batch:
                return
        keys = [item[1] for item in batch]
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
        self.stats_.batch(len(batch), started - since, _perf() - started)
        try:
            ordered = self._ordered(keys, batch, values)
        except BatchResultError as exc:
            await self._fail(state, batch, exc, "error")
            return
        await self._resolve(state, batch, ordered)

    async def _shared_hits(self, shared: SharedCache, batch: list[Item]) -> list[Item]:
        """Answer the keys the shared cache holds; the rest, to load."""
        found = await shared.get([item[0] for item in batch])
        if not found:
            return batch
        for ck, _, fut in batch:
            if ck in found and not fut.done():
                fut.set_result(found[ck])
                self.stats_.shared_hit()
        return [item for item in batch if item[0] not in found]

    async def _resolve(self, state: ScopeState, batch: list[Item], values: list[Any]) -> None:
        failed = []
        for item, value in zip(batch, values, strict=True):
            if isinstance(value, BaseException):
                failed.append((item, value))
            elif not item[2].done():
                item[2].set_result(value)
        for item, error in failed:
            await self._fail(state, [item], error, "error")
        if self.shared is not None:
            bad = {id(item) for item, _ in failed}
            loaded = {item[0]: v for item, v in zip(batch, values, strict=True) if id(item) not in bad}
            if loaded:
                await self.shared.set(loaded)

    async def _call(self, keys: list[Any]) -> Any:
        result = self.batch_fn(keys)
        if inspect.isawaitable(result):
            result = await result
        return result

    def _ordered(self, keys: list[Any], batch: list[Any], values: Any) -> list[Any]:
        if isinstance(values, Mapping):
            return [values.get(item[0], values.get(item[1])) for item in batch]
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

    async def _fail(self, state: ScopeState, batch: list[Any], exc: BaseException, reason: str) -> None:
        fell_back = 0
        for ck, key, fut in batch:
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
