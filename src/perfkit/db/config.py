"""Settings of the SQLAlchemy instrumentation; `PERFKIT_*` variables fill what is not passed."""

from __future__ import annotations

from dataclasses import dataclass

from perfkit.config import parse_bool, parse_duration, parse_int, setting


def _int(name: str, raw: str) -> int:
    return parse_int(name, raw, minimum=1)


@dataclass
class DbConfig:
    slow_query: float | None = None  # seconds; PERFKIT_SLOW_QUERY, default 100ms
    explain: bool | None = None  # EXPLAIN each slow statement shape once; PERFKIT_EXPLAIN
    explain_analyze: bool | None = None  # EXPLAIN ANALYZE (runs the query again); opt-in
    nplusone_threshold: int | None = None  # lazy loads of one relationship per request; default 3
    repeat_threshold: int | None = None  # identical statement+params per request; default 3
    log_params: bool | None = None  # show parameter values in findings (else redacted)
    max_shapes: int = 1000  # statement shapes remembered for EXPLAIN-once

    def __post_init__(self) -> None:
        self.slow_query = setting("slow_query", self.slow_query, 0.1, parse_duration)
        self.explain = setting("explain", self.explain, True, parse_bool)
        self.explain_analyze = setting("explain_analyze", self.explain_analyze, False, parse_bool)
        self.nplusone_threshold = setting("nplusone_threshold", self.nplusone_threshold, 3, _int)
        self.repeat_threshold = setting("repeat_threshold", self.repeat_threshold, 3, _int)
        self.log_params = setting("log_params", self.log_params, False, parse_bool)
