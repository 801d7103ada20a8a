"""N+1 detection: the same relationship lazily loaded N or more times in one request.

One listener, `LazyLoads`, on `do_orm_execute` of the Session class (which also covers AsyncSession,
whose work runs in a sync Session). A lazy load is an ORM execution with `lazy_loaded_from` set; it is
handed to the detector of the engine it runs on, and to no other (every detector counts into the same
per-request tally). Its loader path names the relationship. When one relationship reaches the
threshold inside one request (or `track()` block), one finding is recorded with the fix:
`selectinload(Ticket.comments)` for collections, `joinedload(...)` for many-to-one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from perfkit.db.config import DbConfig
from perfkit.metrics import Collector, current_request

log = logging.getLogger("perfkit.db")
LOG_EVERY = 60.0  # seconds between log lines for one (relationship, route): a hot route is not a log flood


class LazyLoads:
    """The one `do_orm_execute` listener on SQLAlchemy's Session class: each lazy load goes to the
    detector `detector_for(engine)` returns for the engine it runs on (None: not instrumented, not
    counted). One listener per detector would count each load once per detector, and the detector
    that reached the threshold would be whichever one's turn it was, reporting to its collector."""

    def __init__(self, detector_for: Callable[[Any], NPlusOneDetector | None]) -> None:
        self.detector_for = detector_for

    def attach(self) -> None:
        """Listen, once (a no-op when listening already)."""
        from sqlalchemy import event
        from sqlalchemy.orm import Session

        if not event.contains(Session, "do_orm_execute", self.on_execute):
            event.listen(Session, "do_orm_execute", self.on_execute)

    def detach(self) -> None:
        from sqlalchemy import event
        from sqlalchemy.orm import Session

        if event.contains(Session, "do_orm_execute", self.on_execute):
            event.remove(Session, "do_orm_execute", self.on_execute)

    def on_execute(self, state: Any) -> None:
        # only SELECTs carry load options: reading them on session.execute(insert(...)) raises
        if not state.is_select or state.lazy_loaded_from is None or current_request() is None:
            return
        detector = self.detector_for(engine_of(state))
        if detector is not None:
            detector.on_execute(state)


def engine_of(state: Any) -> Any:
    """The Engine an ORM execution runs on: the session's bind for it (a Connection's engine), as
    `Session.execute` chooses it; None when the session has no bind for it."""
    try:
        bind = state.session.get_bind(**state.bind_arguments)
    except Exception:  # unbound: the execution itself fails next, with SQLAlchemy's own error
        return None
    return getattr(bind, "engine", bind)


class NPlusOneDetector:
    def __init__(self, config: DbConfig, collector: Collector) -> None:
        self.config = config
        self.collector = collector
        self.threshold = int(config.nplusone_threshold or 3)
        self.total = collector.counter(
            "db_nplusone_total",
            ("relationship", "route"),
            "Requests with an N+1 pattern, per relationship and route",
        )
        self._logged: dict[tuple[str, str], tuple[float, int]] = {}  # -> (last logged, findings since)

    def on_execute(self, state: Any) -> None:
        """One lazy load (an ORMExecuteState with `lazy_loaded_from`) on one of this detector's engines."""
        path = state.loader_strategy_path
        prop = getattr(path, "prop", None) if path is not None else None
        if prop is None:
            return
        option = "selectinload" if prop.uselist else "joinedload"
        name = f"{prop.parent.class_.__name__}.{prop.key}"
        self.lazy_load((prop.parent.class_.__name__, prop.key), f"{option}({name})", ".options({fix})")

    def lazy_load(self, key: tuple[str, str], fix: str, apply: str) -> None:
        """One lazy load of relationship `key` ((class, attribute)) in the current request; at the
        threshold one `n_plus_one` finding with `fix` (`selectinload(Ticket.comments)`), whose message
        says how to apply it (`apply`, with `{fix}` in it: ".options({fix})"). Any ORM's hook calls this."""
        stats = current_request()
        if stats is None:
            return
        count = stats.lazy_loads.get(key, 0) + 1
        stats.lazy_loads[key] = count
        if count == self.threshold:
            self._report(f"{key[0]}.{key[1]}", fix, apply.format(fix=fix), count, stats.route)

    def _report(self, name: str, hint: str, apply: str, count: int, route: str) -> None:
        self.total.inc((name, route or "-"))
        finding = {
            "relationship": name,
            "count": count,
            "route": route,
            "fix": hint,
            "message": f"N+1 on {name}: {count}+ lazy loads in one request; add {apply}",
        }
        self.collector.record("n_plus_one", finding)
        now, where = time.monotonic(), (name, route or "-")
        last, since = self._logged.get(where, (None, 0))
        if last is not None and now - last < LOG_EVERY:
            self._logged[where] = (last, since + 1)  # counted and recorded, not logged again yet
            return
        if len(self._logged) > 1000:  # bounded: route templates and relationships are, but be safe
            self._logged.clear()
        self._logged[where] = (now, 0)
        more = f"; {since} more since the last line" if since else ""
        log.warning("%s (route %s%s)", finding["message"], where[1], more, extra={"perfkit": finding})
