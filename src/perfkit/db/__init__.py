"""SQLAlchemy instrumentation: per-request query counts, slow queries with EXPLAIN, N+1, pool status.

    engine = create_engine(...)            # or create_async_engine(...)
    perfkit.db.instrument_engine(engine)   # perfkit.instrument(app, engine=engine) does this for you

Inside a request served by perfkit's middleware, queries and lazy loads are counted per request; in
scripts and tests, wrap the work in `with perfkit.db.track(): ...` to get the same accounting (Django
projects too: `perfkit.django` instruments their databases with the same per-statement path,
perfkit.db.observe).
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from perfkit.db.config import DbConfig
from perfkit.db.nplusone import LazyLoads, NPlusOneDetector
from perfkit.db.pool import pool_status, sync_engine, track_pool_wait
from perfkit.db.queries import QueryHooks
from perfkit.metrics import Collector, RequestStats, default_collector, end_request, start_request

__all__ = [
    "DbConfig", "Instrumented", "instrument_engine", "is_instrumented", "pool_status", "track",
    "uninstrument_engine",
]  # fmt: skip

_detectors: weakref.WeakKeyDictionary[Collector, NPlusOneDetector] = weakref.WeakKeyDictionary()
_engines: weakref.WeakKeyDictionary[Any, _EngineHooks] = weakref.WeakKeyDictionary()


def _detector_for(engine: Any) -> NPlusOneDetector | None:
    hooked = _engines.get(engine) if engine is not None else None
    return hooked.detector if hooked is not None else None


_lazy_loads = LazyLoads(_detector_for)  # the one Session-wide listener, for every instrumented engine


class _EngineHooks:
    """The hooks on one (sync) engine, shared by every `Instrumented` handle given out for it; they
    come off when the last handle holding them is removed, or at once by `uninstrument_engine`.

    It holds the engine weakly (it is the value of a registry keyed weakly by the engine), so an engine
    nobody uninstruments is still freed once the application drops it; its detector is then forgotten
    too, unless another engine reports to the same collector."""

    def __init__(self, target: Any, hooks: QueryHooks, detector: NPlusOneDetector) -> None:
        self.hooks, self.detector = hooks, detector
        self.target = weakref.ref(target)
        self.holds = 0  # the handles not removed yet
        # runs inside the garbage collector: bookkeeping only, no SQLAlchemy event is touched there
        # (the Session-wide listener stays until a take-off leaves no engine; it counts nothing meanwhile)
        self.finalizer = weakref.finalize(target, _forget, self, False)

    def release(self) -> None:
        """One handle lets go; the last one takes the hooks off."""
        self.holds -= 1
        if self.holds <= 0:
            self.take_off()

    def take_off(self) -> None:
        """Take the hooks off the engine (a no-op once they are off, or the engine is freed)."""
        target = self.target()
        if target is None or _engines.get(target) is not self:
            return
        self.finalizer.detach()
        self.hooks.detach(target)
        del _engines[target]
        _forget(self, True)


class Instrumented:
    """One `instrument_engine` call's hold on an engine's hooks; `remove()` lets go of it.

    The hooks are one per engine, shared by every call that instrumented it (`instrument_engine`,
    `perfkit.instrument(app, engine=...)`): they stay on until each holder has let go. The handle
    holds the engine weakly, like the hooks do."""

    def __init__(self, engine: Any, shared: _EngineHooks) -> None:
        self.hooks, self.detector = shared.hooks, shared.detector
        self._shared = shared
        self._engine = weakref.ref(engine)
        self._held = True
        shared.holds += 1

    @property
    def engine(self) -> Any:
        """The engine given (or its sync engine, while only that is alive); None once it is freed."""
        return self._engine() or self._shared.target()

    def status(self) -> dict[str, Any]:
        target = self._shared.target()
        return pool_status(target) if target is not None else {}

    def remove(self) -> None:
        """Let go of the hooks: they come off the engine once no other holder is left (another
        `instrument_engine` call, another `instrument()`); safe to call twice."""
        if self._held:
            self._held = False
            self._shared.release()


def _forget(done: _EngineHooks, listener: bool) -> None:
    """Drop what only `done` needed (taken off, or its engine freed): its collector's detector,
    and with `listener` and no engine left, the Session-wide listener."""
    others = [other for other in _engines.values() if other is not done]
    if not any(other.detector is done.detector for other in others):
        _detectors.pop(done.detector.collector, None)
    if listener and not others:
        _lazy_loads.detach()


def instrument_engine(
    engine: Any, *, config: DbConfig | None = None, collector: Collector | None = None
) -> Instrumented:
    """Instrument a sync `Engine` or an `AsyncEngine`; returns this call's hold on its hooks.

    An engine instrumented already keeps the hooks it has (their config and collector; statements
    are never counted twice): the call returns another hold on them, and they stay on until every
    hold is removed (`Instrumented.remove()`) or `uninstrument_engine` takes them off."""
    target = sync_engine(engine)
    existing = _engines.get(target)
    if existing is not None:
        return Instrumented(engine, existing)
    config = config or DbConfig()
    collector = collector or default_collector()
    hooks = QueryHooks(target.dialect.name, config, collector)
    hooks.attach(target)
    detector = _detectors.get(collector)
    if detector is None:  # one detector per collector, however many engines report to it
        detector = _detectors[collector] = NPlusOneDetector(config, collector)
    _lazy_loads.attach()
    track_pool_wait(target, collector)
    shared = _engines[target] = _EngineHooks(target, hooks, detector)
    return Instrumented(engine, shared)


def is_instrumented(engine: Any) -> bool:
    """Whether `engine` (an Engine or AsyncEngine) has perfkit's hooks on it now."""
    return sync_engine(engine) in _engines


def uninstrument_engine(engine: Any) -> None:
    """Take perfkit's hooks off `engine` now, whoever holds them (their handles' `remove()` is then
    a no-op); a no-op if it has none."""
    current = _engines.get(sync_engine(engine))
    if current is not None:
        current.take_off()


@contextmanager
def track(route: str = "") -> Iterator[RequestStats]:
    """Count queries and lazy loads of the enclosed block as one request (for scripts and tests)."""
    stats, token = start_request(route)
    try:
        yield stats
    finally:
        end_request(token)
