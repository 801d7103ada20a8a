"""Core Web Vitals from real users: the `POST {prefix}/rum` collector, its served snippet, and the
aggregation (p75 per route and device class, rated against web.dev's thresholds) the report, the
dashboard and `/metrics` read. See docs/rum.md."""

from perfkit.monitor.rum.config import RumConfig

__all__ = ["RumConfig"]
