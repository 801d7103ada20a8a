"""The recorder: per-name HDR histograms, errors by kind, checks and a per-second timeline.

`record` and `error` are the hot path: a few attribute reads, two or three histogram records and
counter increments. Latency is measured from the request's *intended* send time (open model: the
slot the arrival schedule gave it; closed model: the moment it was sent), and in the open model the
uncorrected latency (from the actual write) is kept next to it, so the effect of coordinated omission
is visible instead of hidden. A recorder serializes to a plain dict (`to_wire`) and merges exactly.
"""

from __future__ import annotations

from typing import Any

from perfkit.bench.hdr import Histogram

ERROR_KINDS = ("status", "timeout", "connection", "protocol")
TIMELINE_DIGITS = 2  # per-second histograms: 1 % precision is plenty for a plot, and 8x smaller
MAX_EXCEPTION_TEXTS = 5  # distinct exception texts kept per task; later ones only add to `raised`


class NameStats:
    """Everything recorded under one request name."""

    __slots__ = ("errors", "latency", "name", "requests", "status", "uncorrected")

    def __init__(self, name: str, uncorrected: bool) -> None:
        self.name = name
        self.latency = Histogram()
        self.uncorrected: Histogram | None = Histogram() if uncorrected else None
        self.requests = 0  # completed: responses plus errors
        self.errors = dict.fromkeys(ERROR_KINDS, 0)
        self.status: dict[int, int] = {}


class Second:
    """One second of the timeline (by completion time)."""

    __slots__ = ("errors", "latency", "requests")

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.latency = Histogram(digits=TIMELINE_DIGITS)


class TaskStats:
    """A scenario task: how often it ran, how often it raised, and the first distinct exceptions."""

    __slots__ = ("exceptions", "raised", "runs")

    def __init__(self) -> None:
        self.runs = 0
        self.raised = 0
        self.exceptions: dict[str, int] = {}  # "Type: message (file:line)" -> count

    def add(self, runs: int, raised: int, exceptions: dict[str, int]) -> None:
        self.runs += runs
        self.raised += raised
        for text, n in exceptions.items():
            if text in self.exceptions or len(self.exceptions) < MAX_EXCEPTION_TEXTS:
                self.exceptions[text] = self.exceptions.get(text, 0) + n


class Recorder:
    """Collects one run's measurements; `start` is the `perf_counter()` of the run's time zero."""

    def __init__(self, start: float, open_model: bool) -> None:
        self.start = start
        self.open_model = open_model
        self.names: dict[str, NameStats] = {}
        self.seconds: list[Second] = []
        self.checks: dict[str, list[int]] = {}  # check name -> [passes, fails]
        self.sent = 0
        self.dropped = 0  # open-model arrivals never sent: the run ended first, or no slot was free
        self.interrupted = False  # the run was stopped early (Ctrl-C)
        self.tasks: dict[str, TaskStats] = {}  # scenario tasks by name
        self._cur_i = -1
        self._cur = Second()

    def stats(self, name: str) -> NameStats:
        st = self.names.get(name)
        if st is None:
            st = self.names[name] = NameStats(name, self.open_model)
        return st

    def _second(self, t: float) -> Second:
        i = int(t - self.start)
        if i != self._cur_i:
            self.flush()  # once a second: fold buffered samples into the histograms
            i = max(i, 0)
            while len(self.seconds) <= i:
                self.seconds.append(Second())
            self._cur_i, self._cur = i, self.seconds[i]
        return self._cur

    def record(self, st: NameStats, status: int, intended: float, sent: float, end: float) -> None:
        """A response arrived: latency from `intended` (corrected) and from `sent` (uncorrected)."""
        us = int((end - intended) * 1e6) or 1
        st.latency.record(us)
        if st.uncorrected is not None:
            st.uncorrected.record(int((end - sent) * 1e6) or 1)
        st.requests += 1
        st.status[status] = st.status.get(status, 0) + 1
        sec = self._second(end)
        sec.requests += 1
        sec.latency.record(us)
        if status >= 400:
            st.errors["status"] += 1
            sec.errors += 1

    def error(self, st: NameStats, kind: str, end: float) -> None:
        """A request failed without a response (timeout, connection, protocol)."""
        st.requests += 1
        st.errors[kind] += 1
        sec = self._second(end)
        sec.requests += 1
        sec.errors += 1

    def flush(self) -> None:
        self._cur.latency.flush()
        for st in self.names.values():
            st.latency.flush()
            if st.uncorrected is not None:
                st.uncorrected.flush()

    def check(self, name: str, ok: bool) -> None:
        counts = self.checks.get(name)
        if counts is None:
            counts = self.checks[name] = [0, 0]
        counts[0 if ok else 1] += 1

    def task_run(self, name: str, error: str | None) -> None:
        """A scenario task finished (`error` None) or raised (`error` describes the exception)."""
        stats = self.tasks.get(name)
        if stats is None:
            stats = self.tasks[name] = TaskStats()
        stats.add(1, 0 if error is None else 1, {} if error is None else {error: 1})

    # -- totals ---------------------------------------------------------------------------------------

    @property
    def completed(self) -> int:
        return sum(st.requests for st in self.names.values())

    def total_latency(self, corrected: bool = True) -> Histogram:
        total = Histogram()
        for st in self.names.values():
            h = st.latency if corrected else st.uncorrected
            if h is not None:
                total.add(h)
        return total

    # -- wire form and exact merge --------------------------------------------------------------------

    def to_wire(self) -> dict[str, Any]:
        return {
            "open_model": self.open_model,
            "sent": self.sent,
            "dropped": self.dropped,
            "interrupted": self.interrupted,
            "tasks": {n: [t.runs, t.raised, t.exceptions] for n, t in self.tasks.items()},
            "checks": self.checks,
            "names": {
                n: {
                    "latency": st.latency.encode(),
                    "uncorrected": st.uncorrected.encode() if st.uncorrected is not None else None,
                    "requests": st.requests,
                    "errors": st.errors,
                    "status": st.status,
                }
                for n, st in self.names.items()
            },
            "seconds": [[s.requests, s.errors, s.latency.encode()] for s in self.seconds],
        }

    def merge_wire(self, wire: dict[str, Any]) -> None:
        """Add another recorder's results (from `to_wire`) into this one; counts and histograms add."""
        self.sent += wire["sent"]
        self.dropped += wire["dropped"]
        self.interrupted = self.interrupted or wire["interrupted"]
        for name, (runs, raised, exceptions) in wire["tasks"].items():
            self.tasks.setdefault(name, TaskStats()).add(runs, raised, exceptions)
        for name, (passes, fails) in wire["checks"].items():
            counts = self.checks.setdefault(name, [0, 0])
            counts[0] += passes
            counts[1] += fails
        for name, data in wire["names"].items():
            st = self.stats(name)
            st.latency.add(Histogram.decode(data["latency"]))
            if data["uncorrected"] is not None and st.uncorrected is not None:
                st.uncorrected.add(Histogram.decode(data["uncorrected"]))
            st.requests += data["requests"]
            for kind, n in data["errors"].items():
                st.errors[kind] += n
            for status, n in data["status"].items():
                st.status[int(status)] = st.status.get(int(status), 0) + n
        for i, (requests, errors, hist) in enumerate(wire["seconds"]):
            while len(self.seconds) <= i:
                self.seconds.append(Second())
            sec = self.seconds[i]
            sec.requests += requests
            sec.errors += errors
            sec.latency.add(Histogram.decode(hist))
