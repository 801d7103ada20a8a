"""Monitoring: health checks, Prometheus metrics, the performance report, alerts, history, live
metrics and the dashboard, mounted by `perfkit.instrument(app)` under `/perf`.

Nothing here runs at import: no registry, no store, no task until a `Monitor` is built and started.
"""

from perfkit.monitor.alerts import AlertRule
from perfkit.monitor.config import Budgets, MonitorConfig
from perfkit.monitor.health import Check, CheckResult
from perfkit.monitor.monitor import Monitor
from perfkit.monitor.rum import RumConfig

__all__ = ["AlertRule", "Budgets", "Check", "CheckResult", "Monitor", "MonitorConfig", "RumConfig"]
