"""The five Core Web Vitals perfkit aggregates: names, units, thresholds, histogram buckets, ratings.

Thresholds are web.dev's (the ones `web-vitals` itself rates with): a value at or below `good` is
good, above `poor` is poor, in between needs improvement. Times are kept in seconds in the histograms
(Prometheus' base unit) and shown in milliseconds; CLS has no unit. Every threshold is a bucket bound,
so the share of good / needs-improvement / poor page views is exact, not interpolated.
"""

from __future__ import annotations

from dataclasses import dataclass

GOOD, NEEDS_IMPROVEMENT, POOR = "good", "needs-improvement", "poor"


@dataclass(frozen=True)
class Vital:
    name: str  # as web-vitals names it: "LCP"
    good: float  # in the unit shown (ms, or unitless for CLS)
    poor: float
    scale: float  # shown value = histogram value * scale (1000 for seconds -> ms)
    buckets: tuple[float, ...]  # histogram bounds, in the histogram's unit
    family: str  # collector histogram name
    unit: str  # "ms" or ""
    help: str

    def rating(self, shown: float) -> str:
        """good / needs-improvement / poor for a value in the shown unit (ms, or CLS)."""
        if shown <= self.good:
            return GOOD
        return NEEDS_IMPROVEMENT if shown <= self.poor else POOR


_SECONDS = (
    0.1,
    0.2,
    0.3,
    0.5,
    0.8,
    1.0,
    1.2,
    1.5,
    1.8,
    2.0,
    2.5,
    3.0,
    3.5,
    4.0,
    5.0,
    6.0,
    8.0,
    10.0,
    15.0,
    30.0,
)
_INP = (0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.5, 2.0, 5.0)
_CLS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.5, 0.75, 1.0, 2.0)

VITALS: dict[str, Vital] = {
    v.name: v
    for v in (
        Vital("LCP", 2500, 4000, 1000, _SECONDS, "rum_lcp_seconds", "ms", "Largest Contentful Paint (RUM)"),
        Vital("INP", 200, 500, 1000, _INP, "rum_inp_seconds", "ms", "Interaction to Next Paint (RUM)"),
        Vital("CLS", 0.1, 0.25, 1, _CLS, "rum_cls", "", "Cumulative Layout Shift (RUM)"),
        Vital("FCP", 1800, 3000, 1000, _SECONDS, "rum_fcp_seconds", "ms", "First Contentful Paint (RUM)"),
        Vital("TTFB", 800, 1800, 1000, _SECONDS, "rum_ttfb_seconds", "ms", "Time to First Byte (RUM)"),
    )
}
# TTFB split: the server's own time (Server-Timing `total`) and the rest (network, redirects, queueing)
TTFB_SERVER = "rum_ttfb_server_seconds"
TTFB_REST = "rum_ttfb_rest_seconds"
TARGETS = "rum_targets_total"  # page views per (metric, route, attribution target)
BEACONS = "rum_beacons_total"  # beacons per outcome (accepted, refused_origin, rate_limited, ...)
ATTRIBUTED = ("LCP", "INP", "CLS")  # the metrics whose attribution names an element
DEVICES = ("mobile", "desktop")
