"""The JSON report: a stable, documented schema (docs/bench.md), version `perfkit.bench/1`.

Latencies are in milliseconds (floats), rates per second, error rates as fractions (0.01 = 1 %).
Histograms are included in HdrHistogram's base64 form so a report can be re-merged or re-analysed.
Additive changes keep the version; renaming or removing a field bumps it.
"""

from __future__ import annotations

from typing import Any

from perfkit import __version__
from perfkit.bench.hdr import PERCENTILES, Histogram
from perfkit.bench.plan import Plan
from perfkit.bench.recorder import ERROR_KINDS, NameStats, Recorder
from perfkit.redaction import redact

SCHEMA = "perfkit.bench/1"
ALL = "*"  # the key of the global entry in the per-name maps


def pct_key(p: float) -> str:
    return f"p{p:g}"


def latency_block(h: Histogram | None) -> dict[str, Any] | None:
    """count, min, mean, p50 ... p99.9, max, in ms; None when there is no histogram."""
    if h is None:
        return None
    block: dict[str, Any] = {"count": h.count, "min": h.min / 1000, "mean": round(h.mean / 1000, 4)}
    values = h.percentiles(list(PERCENTILES))
    for p in PERCENTILES:
        block[pct_key(p)] = values[p] / 1000
    block["max"] = h.max / 1000
    return block


def _name_block(
    requests: int,
    errors: dict[str, int],
    status: dict[int, int],
    lat: Histogram,
    unc: Histogram | None,
    elapsed: float,
) -> dict[str, Any]:
    n_err = sum(errors.values())
    return {
        "requests": requests,
        "errors": n_err,
        "error_rate": n_err / requests if requests else None,
        "rps": requests / elapsed if elapsed > 0 else 0.0,
        "errors_by_kind": {k: errors.get(k, 0) for k in ERROR_KINDS},
        "status_codes": {str(k): v for k, v in sorted(status.items())},
        "latency_ms": latency_block(lat),
        "uncorrected_latency_ms": latency_block(unc),
        "histogram": lat.encode(),
    }


def totals(rec: Recorder) -> NameStats:
    """All names added into one NameStats (the global row)."""
    total = NameStats(ALL, rec.open_model)
    for st in rec.names.values():
        total.latency.add(st.latency)
        if total.uncorrected is not None and st.uncorrected is not None:
            total.uncorrected.add(st.uncorrected)
        total.requests += st.requests
        for k, v in st.errors.items():
            total.errors[k] += v
        for code, v in st.status.items():
            total.status[code] = total.status.get(code, 0) + v
    return total


def build(rec: Recorder, plan: Plan, target: str, started_at: str, elapsed: float) -> dict[str, Any]:
    """The report document (without thresholds and baseline, which the command adds)."""
    total = totals(rec)
    names = {
        ALL: _name_block(
            total.requests, total.errors, total.status, total.latency, total.uncorrected, elapsed
        )
    }
    for name in sorted(rec.names):
        st = rec.names[name]
        names[name] = _name_block(st.requests, st.errors, st.status, st.latency, st.uncorrected, elapsed)
    timeline = []
    for i, s in enumerate(rec.seconds):
        values = s.latency.percentiles([50.0, 95.0, 99.0])
        timeline.append(
            {
                "t": i,
                "requests": s.requests,
                "errors": s.errors,
                "p50_ms": values[50.0] / 1000,
                "p95_ms": values[95.0] / 1000,
                "p99_ms": values[99.0] / 1000,
                "max_ms": s.latency.max / 1000,
            }
        )
    return {
        "schema": SCHEMA,
        "perfkit_version": __version__,
        "target": redact(target),  # the JSON, the HTML report and the summary show no token or password
        "started_at": started_at,
        "duration_s": round(elapsed, 3),
        "config": {
            "model": "open" if plan.open_model else "closed",
            "rate": plan.rate,
            "users": None if plan.open_model else plan.users,
            "stages": [
                {"duration_s": s.duration, "target": s.target, "unit": "rps" if s.per_second else "users"}
                for s in plan.stages
            ],
            "connections": plan.connection_count,
            "processes": plan.processes,
            "timeout_s": plan.timeout,
            "max_requests": plan.max_requests,
        },
        "sent": rec.sent,
        "dropped": rec.dropped,
        "interrupted": rec.interrupted,
        "names": names,
        "tasks": {
            name: {
                "runs": t.runs,
                "raised": t.raised,
                "exceptions": [
                    {"error": text, "count": n}
                    for text, n in sorted(t.exceptions.items(), key=lambda kv: -kv[1])
                ],
            }
            for name, t in sorted(rec.tasks.items())
        },
        "checks": {k: {"passes": v[0], "fails": v[1]} for k, v in sorted(rec.checks.items())},
        "timeline": timeline,
        "spectrum": [[p, v / 1000] for p, v in total.latency.spectrum()],
        "uncorrected_spectrum": (
            [[p, v / 1000] for p, v in total.uncorrected.spectrum()]
            if total.uncorrected is not None
            else None
        ),
        "thresholds": [],
        "baseline": None,
        "failures": [],
        "warnings": [],
        "passed": True,
    }
