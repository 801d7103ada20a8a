"""`OtelConfig`: what perfkit reports to OpenTelemetry, resolved once (`instrument(app, otel=...)`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from perfkit.errors import ConfigurationError

__all__ = ["OtelConfig"]


@dataclass(frozen=True)
class OtelConfig:
    """`tracer_provider` / `meter_provider`: None for the global ones (what the application set with
    `trace.set_tracer_provider(...)`); perfkit never configures an SDK itself.

    `traces` / `metrics`: report spans / OTel metrics at all. `cache_spans`: a span per cache tier
    operation (an L1 hit is ~0.2 µs, its span ~10 µs with an SDK: turn it off for cache-heavy routes).
    `query_text`: put the SQL (parameterized, clipped) in `db.query.text`.
    """

    tracer_provider: Any = None
    meter_provider: Any = None
    traces: bool = True
    metrics: bool = True
    cache_spans: bool = True
    query_text: bool = True

    def __post_init__(self) -> None:
        for name in ("traces", "metrics", "cache_spans", "query_text"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigurationError(
                    f"otel.{name}", f"must be True or False, not {getattr(self, name)!r}"
                )

    @classmethod
    def resolve(cls, value: OtelConfig | bool) -> OtelConfig | None:
        """`instrument()`'s `otel=`: True for the defaults, False for none, or a config."""
        if isinstance(value, OtelConfig):
            return value
        if value is True:
            return cls()
        if value is False:
            return None
        raise ConfigurationError("otel", f"must be True, False or an OtelConfig, not {value!r}")
