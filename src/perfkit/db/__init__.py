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
_instrumented: weakref.WeakKeyDictionary[Any, Instrumented] = weakref.WeakKeyDictionary()


def _detector_for(engine: Any) -> NPlusOneDetector | None:
    done = _instrumented.get(engine) if engine is not None else None
    return done.detector if done is not None else None


_lazy_loads = LazyLoads(_detector_for)  # the one Session-wide listener, for every instrumented engine


class Instrumented:
    """The hooks installed on one engine; `remove()` takes them off again.

    It holds the engine weakly (it is the value of a registry keyed weakly by the engine), so an engine
    nobody uninstruments is still freed once the application drops it; its detector is then forgotten
    too, unless another engine reports to the same collector."""

    def __init__(self, engine: Any, hooks: QueryHooks, detector: NPlusOneDetector) -> None:
        self.hooks, self.detector = hooks, detector
        target = sync_engine(engine)
        self._engine, self._target = weakref.ref(engine), weakref.ref(target)
        # runs inside the garbage collector: bookkeeping only, no SQLAlchemy event is touched there
        # (the Session-wide listener stays until a `remove()` leaves no engine; it counts nothing meanwhile)
        self._finalizer = weakref.finalize(target, _forget, self, False)

    @property
    def engine(self) -> Any:
        """The engine given (or its sync engine, while only that is alive); None once it is freed."""
        return self._engine() or self._target()

    def status(self) -> dict[str, Any]:
        target = self._target()
        return pool_status(target) if target is not None else {}

    def remove(self) -> None:
        """Take the hooks off; safe to call twice."""
        target = self._target()
        if target is None or _instrumented.get(target) is not self:
            return
        self._finalizer.detach()
        self.hooks.detach(target)
        del _instrumented[target]
        _forget(self, True)


def _forget(done: Instrumented, listener: bool) -> None:
    """Drop what only `done` needed (uninstrumented, or its engine freed): its collector's detector,
    and with `listener` and no engine left, the Session-wide listener."""
    others = [other for other in _instrumented.values() if other is not done]
    if not any(other.detector is done.detector for other in others):
        _detectors.pop(done.detector.collector, None)
    if listener and not others:
        _lazy_loads.detach()


def instrument_engine(
    engine: Any, *, config: DbConfig | None = None, collector: Collector | None = None
) -> Instrumented:
    """Instrument a sync `Engine` or an `AsyncEngine`; calling it twice on one engine is a no-op."""
    target = sync_engine(engine)
    existing = _instrumented.get(target)
    if existing is not None:
        return existing
    config = config or DbConfig()
    collector = collector or default_collector()
    hooks = QueryHooks(target.dialect.name, config, collector)
    hooks.attach(target)
    detector = _detectors.get(collector)
    if detector is None:  # one detector per collector, however many engines report to it
        detector = _detectors[collector] = NPlusOneDetector(config, collector)
    _lazy_loads.attach()
    track_pool_wait(target, collector)
    done = Instrumented(engine, hooks, detector)
    _instrumented[target] = done
    return done


def is_instrumented(engine: Any) -> bool:
    """Whether `engine` (an Engine or AsyncEngine) has perfkit's hooks on it now."""
    return sync_engine(engine) in _instrumented


def uninstrument_engine(engine: Any) -> None:
    """Remove perfkit's hooks from `engine` (whatever instrumented it last); a no-op if none."""
    current = _instrumented.get(sync_engine(engine))
    if current is not None:
        current.remove()


@contextmanager
def track(route: str = "") -> Iterator[RequestStats]:
    """Count queries and lazy loads of the enclosed block as one request (for scripts and tests)."""
    stats, token = start_request(route)
    try:
        yield stats
    finally:
        end_request(token)
