"""Latency histograms: a thin wrapper over HdrHistogram_py, in microseconds, exactly mergeable.

Values are recorded as integer microseconds from 1 µs to 1 hour with 3 significant digits (0.1 %
error). Recording appends to a plain `array` (tens of nanoseconds); the samples are folded into the
HdrHistogram in bulk (`flush`: one `record_value(value, count)` per distinct value, counted by
`collections.Counter` in C) once a second and before any read, which keeps HdrHistogram_py's
pure-Python indexing off the hot path. `encode()` gives HdrHistogram's compressed base64 wire form:
worker processes ship their histograms to the parent, which adds them, so the merged percentiles
are exactly those of one histogram that saw every sample (percentiles are never averaged).
"""

from __future__ import annotations

from array import array
from collections import Counter
from typing import Any

from perfkit.errors import MissingDependencyError

LOWEST_US = 1
HIGHEST_US = 3_600_000_000
DIGITS = 3
PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)


def _hdr_class() -> Any:
    try:
        from hdrh.histogram import HdrHistogram
    except ImportError:  # pragma: no cover - the cli extra installs it
        raise MissingDependencyError("bench", "hdrhistogram", "cli") from None
    return HdrHistogram


class Histogram:
    """Microsecond latencies; `record(us)` on the hot path, percentiles and merging afterwards."""

    __slots__ = ("_buf", "_h", "record")

    def __init__(self, hdr: Any = None, digits: int = DIGITS) -> None:
        self._h = hdr if hdr is not None else _hdr_class()(LOWEST_US, HIGHEST_US, digits)
        self._buf: array[int] = array("q")
        self.record = self._buf.append  # bound once: the hot path calls it directly

    def flush(self) -> None:
        """Fold the buffered samples into the histogram (values clamped to its range)."""
        buf = self._buf
        if not buf:
            return
        record = self._h.record_value
        for value, n in Counter(buf).items():
            record(min(max(value, LOWEST_US), HIGHEST_US), n)
        del buf[:]  # in place: `record` stays bound to this array

    @property
    def count(self) -> int:
        self.flush()
        return int(self._h.get_total_count())

    def percentile(self, p: float) -> float:
        """The value at percentile `p` (0-100) in microseconds; 0 when empty."""
        return float(self._h.get_value_at_percentile(p)) if self.count else 0.0

    def percentiles(self, ps: list[float]) -> dict[float, float]:
        """Several percentiles in one pass over the histogram (µs); zeros when empty."""
        if not self.count:
            return dict.fromkeys(ps, 0.0)
        found = self._h.get_percentile_to_value_dict(ps)
        return {p: float(found[p]) for p in ps}

    @property
    def max(self) -> float:
        return float(self._h.get_max_value()) if self.count else 0.0

    @property
    def min(self) -> float:
        return float(self._h.get_min_value()) if self.count else 0.0

    @property
    def mean(self) -> float:
        return float(self._h.get_mean_value()) if self.count else 0.0

    def add(self, other: Histogram) -> None:
        """Add every sample of `other` into this histogram (exact)."""
        self.flush()
        if other.count:
            self._h.add(other._h)

    def encode(self) -> str:
        self.flush()
        return str(self._h.encode().decode("ascii"))

    @classmethod
    def decode(cls, data: str) -> Histogram:
        return cls(_hdr_class().decode(data.encode("ascii")))

    def spectrum(self) -> list[tuple[float, float]]:
        """(percentile, value µs) pairs from 0 to 99.999 on a log scale of 1/(1-p), for the report plot."""
        if not self.count:
            return []
        tails = (1.0, 0.5, 0.25, 0.1, 0.05, 0.025, 0.01, 0.005, 0.0025, 0.001, 0.0005, 0.0001, 0.00001)
        ps = [round((1.0 - tail) * 100.0, 4) for tail in tails]
        values = self.percentiles(ps)
        return [(p, values[p]) for p in ps] + [(100.0, self.max)]
