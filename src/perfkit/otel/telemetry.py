"""The tracer and the instruments perfkit reports to, found on first use and again in a forked child.

perfkit depends on `opentelemetry-api` only and never configures an SDK. Until the application registers
one (`trace.set_tracer_provider`, `metrics.set_meter_provider`, or the providers given in `OtelConfig`),
the providers are the API's proxies or no-ops: the hooks find nothing to report to after a clock read
(the providers are looked at again at most once a second), and nothing else runs. Once a real provider
is there, its tracer and perfkit's instruments are made once and kept. `os.register_at_fork` forgets
them in a forked child (a uvicorn or gunicorn worker), which finds them again from the providers as they
are in that process: the SDK the worker configures after the fork.
"""

from __future__ import annotations

import os
import weakref
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from time import monotonic
from typing import Any

from perfkit.errors import MissingDependencyError
from perfkit.otel.config import OtelConfig

try:
    from opentelemetry import metrics as otel_metrics
    from opentelemetry import trace
except ImportError as exc:  # pragma: no cover - the extra is not installed: say how to fix it
    raise MissingDependencyError("otel", "opentelemetry-api", "otel") from exc

__all__ = ["SCHEMA_URL", "Meters", "Telemetry", "api_only"]

SCHEMA_URL = "https://opentelemetry.io/schemas/1.26.0"  # stable HTTP and DB conventions
# semantic-convention bucket advice: HTTP server durations, DB client durations (seconds)
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
DB_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0)

_API_ONLY: dict[type, bool] = {}
_LIVE: weakref.WeakSet[Telemetry] = weakref.WeakSet()
_fork_hook = [False]


def api_only(provider: Any) -> bool:
    """True for the API's own providers (the proxy before an SDK is set, the no-op): nothing records."""
    cls = type(provider)
    known = _API_ONLY.get(cls)
    if known is None:
        known = _API_ONLY[cls] = cls.__module__.startswith(("opentelemetry.trace", "opentelemetry.metrics"))
    return known


class Meters:
    """perfkit's instruments on one meter (stable semantic-convention names where there is one)."""

    def __init__(self, meter: Any) -> None:
        self.request_duration = meter.create_histogram(
            "http.server.request.duration", "s", "Duration of HTTP server requests",
            explicit_bucket_boundaries_advisory=HTTP_BUCKETS,
        )  # fmt: skip
        self.db_duration = meter.create_histogram(
            "db.client.operation.duration", "s", "Duration of database client operations",
            explicit_bucket_boundaries_advisory=DB_BUCKETS,
        )  # fmt: skip
        self.cache_operations = meter.create_counter(
            "perfkit.cache.operations", "{operation}", "Cache tier operations by namespace, tier and outcome"
        )
        self.jobs_sent = meter.create_counter("messaging.client.sent.messages", "{message}", "Jobs enqueued")
        self.job_duration = meter.create_histogram(
            "messaging.process.duration", "s", "Duration of job attempts",
            explicit_bucket_boundaries_advisory=HTTP_BUCKETS,
        )  # fmt: skip
        self.job_wait = meter.create_histogram(
            "perfkit.job.wait.duration", "s", "Time from a job's enqueue (or scheduled time) to its start",
            explicit_bucket_boundaries_advisory=HTTP_BUCKETS,
        )  # fmt: skip


class Telemetry:
    """Where perfkit's spans and metrics go. The hot paths read `final` and `now`: when `final`, `now`
    is (tracer, meters) for good; otherwise they call `current()`, which looks at the providers again
    at most every `RECHECK` seconds (a no-SDK request costs a clock read, not a provider lookup)."""

    RECHECK = 1.0  # seconds: an SDK registered after the first request is used from at most this later

    def __init__(self, config: OtelConfig | None = None) -> None:
        self.config = config or OtelConfig()
        self.final = False
        self.now: tuple[Any, Meters | None] = (None, None)
        self._next = 0.0
        _LIVE.add(self)
        if not _fork_hook[0]:
            _fork_hook[0] = True
            os.register_at_fork(after_in_child=_forget_all)

    @property
    def tracer_now(self) -> Any:
        """The tracer found so far (None: none yet)."""
        return self.now[0]

    @property
    def meters_now(self) -> Meters | None:
        """The instruments made so far (None: none yet)."""
        return self.now[1]

    def current(self) -> tuple[Any, Meters | None]:
        """(tracer, meters), each None while its provider does not record (no SDK) or it is turned off."""
        moment = monotonic()
        if moment < self._next:
            return self.now
        self._next = moment + self.RECHECK
        tracer, meters = self.now
        config = self.config
        if tracer is None and config.traces:
            provider = config.tracer_provider or trace.get_tracer_provider()
            if not api_only(provider):
                tracer = provider.get_tracer("perfkit", _version(), SCHEMA_URL)
        if meters is None and config.metrics:
            provider = config.meter_provider or otel_metrics.get_meter_provider()
            if not api_only(provider):
                meters = Meters(provider.get_meter("perfkit", _version(), SCHEMA_URL))
        self.now = (tracer, meters)
        self.final = (tracer is not None or not config.traces) and (meters is not None or not config.metrics)
        return self.now

    def tracer(self) -> Any:
        """The tracer of a recording provider, or None (no SDK yet, or `traces=False`)."""
        self._next = 0.0
        return self.current()[0]

    def meters(self) -> Meters | None:
        """perfkit's instruments on a recording meter provider, or None (no SDK yet, or `metrics=False`)."""
        self._next = 0.0
        return self.current()[1]

    def forget(self) -> None:
        """Find the tracer and instruments again on next use (after a fork)."""
        self.final = False
        self.now = (None, None)
        self._next = 0.0


@cache
def _version() -> str | None:
    """perfkit's version, the instrumentation scope's (from the installed distribution)."""
    try:
        return version("perfkit")
    except PackageNotFoundError:  # pragma: no cover - run from a source tree that was never installed
        return None


def _forget_all() -> None:
    for telemetry in list(_LIVE):
        telemetry.forget()
