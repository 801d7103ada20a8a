"""Load shapes: the open model's arrival schedule and the closed model's user count, with stages.

Open model (`--rate 2000/s`, or stages like `--stage 30s:100/s --stage 1m:500/s`): arrivals come at a
rate that ramps linearly, within each stage, from the previous stage's target to this one's (the
first stage starts from `--rate` if given, else from its own target, so a single stage is a constant
rate). `time_of(n)` inverts the cumulative arrival count, so the n-th request's intended send time
is exact and independent of how fast the server answers: that is what makes latency measured from
it free of coordinated omission.

Closed model (`--users 100`, or stages like `--stage 30s:50`): a number of users, each sending its
next request when the previous one has returned; the count ramps the same way.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from perfkit.config import parse_duration
from perfkit.errors import ConfigurationError

_STAGE = re.compile(r"^\s*([^:]+):\s*([0-9.]+)\s*(/s)?\s*$")


@dataclass(frozen=True)
class Stage:
    """Ramp to `target` (requests/s in the open model, users in the closed one) over `duration` s."""

    duration: float
    target: float
    per_second: bool


def parse_stage(raw: str) -> Stage:
    """`30s:100/s` (open model) or `1m:50` (closed model)."""
    m = _STAGE.match(raw)
    if not m:
        raise ConfigurationError(
            "--stage", f"{raw!r} is not DURATION:RATE/s or DURATION:USERS, e.g. 30s:100/s"
        )
    duration = parse_duration("--stage", m.group(1))
    try:
        target = float(m.group(2))
    except ValueError:
        raise ConfigurationError("--stage", f"{raw!r}: {m.group(2)!r} is not a number") from None
    if not (math.isfinite(duration) and duration > 0):
        raise ConfigurationError("--stage", f"{raw!r}: the duration must be a finite number > 0")
    return Stage(duration, target, m.group(3) is not None)


def parse_rate(raw: str) -> float:
    """`2000/s`, `2000`, or `120/m`."""
    text = raw.strip().lower()
    factor = 1.0
    if text.endswith("/s"):
        text = text[:-2]
    elif text.endswith("/m"):
        text, factor = text[:-2], 1 / 60
    try:
        value = float(text) * factor
    except ValueError:
        raise ConfigurationError("--rate", f"{raw!r} is not a rate; use e.g. 2000/s") from None
    if not (value > 0 and math.isfinite(value)):
        raise ConfigurationError("--rate", f"{raw!r}: the rate must be a finite number > 0")
    return value


class ArrivalSchedule:
    """Intended send times of an open model: `time_of(n)` seconds from the start, or None past the end."""

    def __init__(self, stages: list[Stage], start_rate: float | None = None) -> None:
        if not stages:
            raise ConfigurationError("--stage", "an open model needs a rate or at least one stage")
        self._segments: list[tuple[float, float, float, float, float]] = []  # (t0, T, r0, r1, n0)
        t0, n0 = 0.0, 0.0
        r0 = stages[0].target if start_rate is None else start_rate
        for stage in stages:
            r1 = stage.target
            self._segments.append((t0, stage.duration, r0, r1, n0))
            n0 += (r0 + r1) / 2 * stage.duration
            t0 += stage.duration
            r0 = r1
        self.duration = t0
        self.total = n0  # expected number of arrivals (fractional)
        self._seg = 0

    def count_before(self, t: float) -> int:
        """How many arrivals are due before `t` seconds from the start (all of them when t >= the end)."""
        lo, hi = 0, math.ceil(self.total) + 1  # time_of(hi) is None: past the last arrival
        while lo < hi:  # the first n whose arrival is not due before t
            mid = (lo + hi) // 2
            due = self.time_of(mid)
            if due is None or due >= t:
                hi = mid
            else:
                lo = mid + 1
        return lo

    def time_of(self, n: int) -> float | None:
        """Seconds from the start at which the n-th (0-based) arrival is due."""
        segments = self._segments
        i = self._seg
        if n < segments[i][4]:  # callers move forward; a step back restarts the search
            i = 0
        while i + 1 < len(segments) and n >= segments[i + 1][4]:
            i += 1
        self._seg = i
        t0, span, r0, r1, n0 = segments[i]
        m = n - n0
        if m <= 0:
            dt = 0.0
        elif r0 == r1:
            dt = m / r0 if r0 > 0 else math.inf
        else:  # m = r0 t + (r1 - r0) t^2 / (2 span), solved in a form stable for small slopes
            a = (r1 - r0) / (2 * span)
            disc = r0 * r0 + 4 * a * m
            dt = 2 * m / (r0 + math.sqrt(disc)) if disc >= 0 and r0 + math.sqrt(disc) > 0 else math.inf
        if dt >= span:  # the end of a stage belongs to the next one; past the last, the run is over
            return None if i + 1 == len(segments) else t0 + span
        return t0 + dt


class UserSchedule:
    """How many users a closed model runs at time t: ramps between stage targets."""

    def __init__(self, stages: list[Stage], start_users: int) -> None:
        self._stages = stages
        self._start = start_users
        self.duration = sum(s.duration for s in stages)

    def users_at(self, t: float) -> int:
        prev, t0 = float(self._start), 0.0
        for stage in self._stages:
            if t < t0 + stage.duration:
                return round(prev + (stage.target - prev) * (t - t0) / stage.duration)
            prev, t0 = stage.target, t0 + stage.duration
        return round(prev)
