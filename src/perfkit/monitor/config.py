"""Settings of the monitoring part; `PERFKIT_MONITOR_*` environment variables fill what is not passed."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from perfkit.config import parse_bool, parse_duration, parse_str, setting
from perfkit.errors import ConfigurationError
from perfkit.monitor.rum.config import RumConfig

DEFAULT_URL = "sqlite:///.perfkit/monitor.db"  # a served app's store, shared by its worker processes
TEST_URL = "memory://"  # the default under a test runner: test runs never write into the served store

log = logging.getLogger("perfkit.monitor")


def under_test_runner() -> bool:
    """True in a test run: pytest is running this process, a pytest test started this process
    (`PYTEST_CURRENT_TEST` is inherited), or Starlette's `TestClient` is in use (FastAPI's included)."""
    return (
        "PYTEST_CURRENT_TEST" in os.environ
        or "pytest" in sys.modules
        or "starlette.testclient" in sys.modules
    )


def default_url() -> str:
    """The store when none is given: `memory://` under a test runner, else `sqlite:///.perfkit/monitor.db`.

    The SQLite default is relative to the working directory, so an app's test runs (a `TestClient`
    runs the lifespan) would otherwise write their processes and test-only routes into the store
    the served app reports from."""
    if under_test_runner():
        log.info("monitor store: %s under a test runner (set PERFKIT_MONITOR_URL to choose one)", TEST_URL)
        return TEST_URL
    return DEFAULT_URL


@dataclass(frozen=True)
class Budgets:
    """Performance budgets (the issue's defaults); every KPI of the report is compared with these."""

    avg_ms: float = 500.0
    p95_ms: float = 1000.0
    error_rate: float = 0.01
    db_query_ms: float = 100.0  # p95 of one SQL statement
    cache_hit_ratio: float = 0.80  # a floor, not a ceiling
    cpu_percent: float = 70.0
    memory_percent: float = 80.0
    disk_percent: float = 85.0
    job_failure_rate: float = 0.05
    queries_per_request: float = 10.0
    uncompressed_bytes: int = 1024
    # Core Web Vitals (p75 of real users' page views): web.dev's "good" thresholds
    lcp_ms: float = 2500.0
    inp_ms: float = 200.0
    cls: float = 0.1
    fcp_ms: float = 1800.0
    ttfb_ms: float = 800.0


@dataclass
class MonitorConfig:
    """What `perfkit.instrument(app, monitor=MonitorConfig(...))` mounts and runs."""

    prefix: str | None = None  # PERFKIT_MONITOR_PREFIX, default /perf
    token: str | None = None  # PERFKIT_MONITOR_TOKEN: the Bearer token for everything but liveness
    open: bool | None = None  # PERFKIT_MONITOR_OPEN: reads without a token (actions still need one)
    url: str | None = None  # PERFKIT_MONITOR_URL: the shared store; None: `default_url()` when first used
    window: float | str = 900.0  # the report's default window
    budgets: Budgets = field(default_factory=Budgets)
    alerts: Sequence[Any] = ()  # AlertRule or "p95 > 500ms for 5m"
    webhooks: Sequence[str] = ()  # alert sinks (JSON POST); alerts are always logged too
    alert_interval: float = 15.0
    publish_interval: float = 2.0  # how often each process writes its snapshot to the store
    retention: float | str = 7 * 86400.0  # per-minute rollups kept this long
    show_parameters: bool = False  # statement parameters in reports (redacted otherwise)
    check_timeout: float = 2.0
    checks: Sequence[Any] = ()  # extra readiness checks (perfkit.monitor.health.Check)
    disk_path: str = "/"
    statsd: str | None = None  # PERFKIT_MONITOR_STATSD: "host:port" to push to (UDP)
    statsd_prefix: str = "perfkit"
    statsd_interval: float = 10.0
    rum: RumConfig = field(default_factory=RumConfig)  # POST {prefix}/rum: web vitals from browsers

    def __post_init__(self) -> None:
        prefix = setting("monitor_prefix", self.prefix, "/perf", parse_str)
        if not prefix.startswith("/") or (prefix.endswith("/") and prefix != "/"):
            raise ConfigurationError("prefix", f"{prefix!r} must start with '/' and not end with one")
        self.prefix = "" if prefix == "/" else prefix
        self.token = setting("monitor_token", self.token, None, parse_str) or None
        self.open = setting("monitor_open", self.open, False, parse_bool)
        self.url = setting("monitor_url", self.url, None, parse_str) or None
        self.window = parse_duration("window", self.window)
        self.retention = parse_duration("retention", self.retention)
        self.statsd = setting("monitor_statsd", self.statsd, None, parse_str) or None
        rum: Any = self.rum
        if not isinstance(rum, RumConfig):  # a dict of keywords (Django's PERFKIT["monitor"]["rum"])
            self.rum = RumConfig(**dict(rum))
        if self.publish_interval <= 0 or self.alert_interval <= 0:
            raise ConfigurationError("publish_interval", "intervals must be > 0 seconds")

    def store_url(self) -> str:
        """The store's URL: the one given (or PERFKIT_MONITOR_URL), else `default_url()`, decided when the
        store is first used (the app's lifespan or first request), after a test has set up its client."""
        return self.url or default_url()
