"""The HTML report: one self-contained file (inline CSS and SVG; no script, CDN or network).

Plots: latency over time (p50/p95/p99 per second), the percentile spectrum (corrected and, in the
open model, uncorrected), throughput over time and errors over time; then the per-name table,
checks, thresholds and baseline comparisons.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

from perfkit.bench.report.schema import ALL
from perfkit.bench.report.svg import Series, chart

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1340px}
h1{font-size:20px}h2{font-size:16px;margin-top:28px}
.pass{color:#2a7d2a;font-weight:bold}.fail{color:#c62828;font-weight:bold}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}
td:first-child,th:first-child{text-align:left}
.plots{display:flex;flex-wrap:wrap;gap:12px}
svg.plot{border:1px solid #eee;background:#fff}svg text{font-size:11px;fill:#444}
svg .title{font-size:13px;font-weight:bold}svg .axis{stroke:#888}svg .grid{stroke:#eee}
"""


def _spectrum(points: list[list[float]] | None) -> list[tuple[float, float]]:
    """Percentiles placed on a log axis of 1/(1 - p): 90 %, 99 %, 99.9 % ... are evenly spaced."""
    out = []
    for p, v in points or []:
        if p < 100:
            out.append((math.log10(1 / (1 - p / 100)), v))
    return out


def _table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def render_html(doc: dict[str, Any]) -> str:
    tl = doc["timeline"]
    latency: list[Series] = [
        (label, [(s["t"], s[key]) for s in tl if s["requests"] > s["errors"]])
        for label, key in (("p50", "p50_ms"), ("p95", "p95_ms"), ("p99", "p99_ms"))
    ]
    spectrum: list[Series] = [("corrected", _spectrum(doc["spectrum"]))]
    if doc["uncorrected_spectrum"]:
        spectrum.append(("uncorrected", _spectrum(doc["uncorrected_spectrum"])))
    pct_ticks = [
        (float(i), label) for i, label in enumerate(("0%", "90%", "99%", "99.9%", "99.99%", "99.999%"))
    ]
    plots = [
        chart("Latency over time", latency, "seconds", "ms", chart_id="latency"),
        chart("Percentile spectrum", spectrum, "percentile", "ms", x_ticks=pct_ticks, chart_id="spectrum"),
        chart(
            "Throughput",
            [("responses/s", [(s["t"], s["requests"]) for s in tl])],
            "seconds",
            "req/s",
            chart_id="rate",
        ),
        chart(
            "Errors",
            [("errors/s", [(s["t"], s["errors"]) for s in tl])],
            "seconds",
            "errors",
            bars=True,
            chart_id="errors",
        ),
    ]
    rows = []
    for name, e in doc["names"].items():
        lat = e["latency_ms"] or {}
        rows.append(
            [
                escape("all" if name == ALL else name),
                str(e["requests"]),
                f"{e['rps']:.1f}",
                f"{(e['error_rate'] or 0) * 100:.2f}%",
                *(
                    f"{lat[k]:.2f}" if lat.get("count") else "-"
                    for k in ("p50", "p90", "p95", "p99", "p99.9", "max")
                ),
            ]
        )
    verdict = '<span class="pass">PASSED</span>' if doc["passed"] else '<span class="fail">FAILED</span>'
    cfg = doc["config"]
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>perfkit bench: {escape(doc['target'])}</title><style>{CSS}</style></head><body>",
        f"<h1>perfkit bench: {escape(doc['target'])} {verdict}</h1>",
        f"<p>{escape(cfg['model'])} model, {cfg['connections']} connections, {cfg['processes']} process(es), "
        f"{doc['duration_s']:.1f} s from {escape(doc['started_at'])}; sent {doc['sent']}, dropped "
        f"{doc['dropped']}{' (interrupted)' if doc['interrupted'] else ''}; perfkit "
        f"{escape(doc['perfkit_version'])}. Latency is measured from the intended send time "
        f"(coordinated omission corrected).</p>",
        '<div class="plots">',
        *plots,
        "</div>",
        "<h2>Requests</h2>",
        _table(["name", "requests", "rps", "errors", "p50 ms", "p90", "p95", "p99", "p99.9", "max"], rows),
    ]
    if doc["failures"] or doc["warnings"]:
        items = [f'<li class="fail">{escape(f)}</li>' for f in doc["failures"]]
        items += [f"<li>warning: {escape(w)}</li>" for w in doc["warnings"]]
        parts += ["<h2>Verdict</h2>", f"<ul>{''.join(items)}</ul>"]
    raised = [(name, t) for name, t in doc["tasks"].items() if t["raised"]]
    if raised:
        parts += [
            "<h2>Task exceptions</h2>",
            _table(
                ["task", "runs", "raised", "exceptions"],
                [
                    [
                        escape(name),
                        str(t["runs"]),
                        str(t["raised"]),
                        "<br>".join(f"{e['count']} x {escape(e['error'])}" for e in t["exceptions"]),
                    ]
                    for name, t in raised
                ],
            ),
        ]
    if doc["checks"]:
        parts += [
            "<h2>Checks</h2>",
            _table(
                ["check", "passes", "fails"],
                [[escape(k), str(v["passes"]), str(v["fails"])] for k, v in doc["checks"].items()],
            ),
        ]
    if doc["thresholds"]:
        parts += [
            "<h2>Thresholds</h2>",
            _table(
                ["threshold", "actual", "result"],
                [
                    [
                        escape(t["expression"]),
                        "-" if t["actual"] is None else f"{t['actual']:.4g}",
                        '<span class="pass">pass</span>'
                        if t["passed"]
                        else f'<span class="fail">FAIL {escape(t["reason"])}</span>',
                    ]
                    for t in doc["thresholds"]
                ],
            ),
        ]
    if doc["baseline"]:
        parts += [
            f"<h2>Baseline {escape(doc['baseline']['file'])}</h2>",
            _table(
                ["name", "metric", "baseline", "current", "change", ""],
                [
                    [
                        escape(r["name"]),
                        r["metric"],
                        f"{r['baseline']:.4g}",
                        f"{r['current']:.4g}",
                        f"{r['change'] * 100:+.1f}%",
                        '<span class="fail">regression</span>' if r["regression"] else "",
                    ]
                    for r in doc["baseline"]["comparisons"]
                ],
            ),
        ]
    parts.append("</body></html>\n")
    return "".join(parts)
