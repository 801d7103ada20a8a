"""N+1 detection: the same relationship lazily loaded N or more times in one request.

Listens to `do_orm_execute` on the Session class (which also covers AsyncSession, whose work runs in a
sync Session). A lazy load is an ORM execution with `lazy_loaded_from` set; its loader path names the
relationship. When one relationship reaches the threshold inside one request (or `track()` block), one
finding is recorded with the fix: `selectinload(Ticket.comments)` for collections, `joinedload(...)` for
many-to-one.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from perfkit.db.config import DbConfig
from perfkit.metrics import Collector, current_request

log = logging.getLogger("perfkit.db")
LOG_EVERY = 60.0  # seconds between log lines for one (relationship, route): a hot route is not a log flood


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
        self.attached = False
        self.users = 0  # engines sharing this detector (one per collector)
        self._logged: dict[tuple[str, str], tuple[float, int]] = {}  # -> (last logged, findings since)

    def attach(self) -> None:
        from sqlalchemy import event
        from sqlalchemy.orm import Session

        event.listen(Session, "do_orm_execute", self.on_execute)
        self.attached = True

    def detach(self) -> None:
        from sqlalchemy import event
        from sqlalchemy.orm import Session

        if self.attached:
            event.remove(Session, "do_orm_execute", self.on_execute)
            self.attached = False

    def on_execute(self, state: Any) -> None:
        # only SELECTs carry load options: reading them on session.execute(insert(...)) raises
        if not state.is_select or state.lazy_loaded_from is None:
            return
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
