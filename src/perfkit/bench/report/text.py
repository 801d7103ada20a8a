"""The terminal summary: one row per request name, then checks, thresholds and regressions."""

from __future__ import annotations

from typing import Any

from perfkit.bench.report.schema import ALL


def _ms(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.2f}" if v < 100 else f"{v:.0f}"


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    out.append("  ".join("-" * w for w in widths))
    out.extend("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)
    return out


def render(doc: dict[str, Any]) -> str:
    cfg = doc["config"]
    shape = (
        f"rate {cfg['rate']:g}/s" if cfg["rate"] else (f"{cfg['users']} users" if cfg["users"] else "stages")
    )
    lines = [
        f"perfkit bench {doc['target']}: {cfg['model']} model, {shape}, {cfg['connections']} connections, "
        f"{cfg['processes']} process(es), {doc['duration_s']:.1f} s; sent {doc['sent']}"
        + (f", dropped {doc['dropped']}" if doc["dropped"] else ""),
        "",
    ]
    headers = ["name", "requests", "rps", "errors", "p50 ms", "p90", "p95", "p99", "p99.9", "max"]
    rows = []
    for name, e in doc["names"].items():
        lat = e["latency_ms"] or {}
        kinds = ", ".join(f"{k} {v}" for k, v in e["errors_by_kind"].items() if v)
        rows.append(
            [
                "all" if name == ALL else name,
                str(e["requests"]),
                f"{e['rps']:.1f}",
                f"{(e['error_rate'] or 0) * 100:.2f}%" + (f" ({kinds})" if kinds else ""),
                *(
                    _ms(lat.get(k)) if lat.get("count") else "-"
                    for k in ("p50", "p90", "p95", "p99", "p99.9", "max")
                ),
            ]
        )
    lines += _table(headers, rows)
    unc = doc["names"][ALL]["uncorrected_latency_ms"]
    if unc and unc["count"]:
        lines.append(
            f"uncorrected (from the actual send, hides coordinated omission): p50 {_ms(unc['p50'])} "
            f"p99 {_ms(unc['p99'])} max {_ms(unc['max'])} ms"
        )
    if doc["checks"]:
        lines += [
            "",
            *_table(
                ["check", "passes", "fails"],
                [[k, str(v["passes"]), str(v["fails"])] for k, v in doc["checks"].items()],
            ),
        ]
    raised = [(name, t) for name, t in doc["tasks"].items() if t["raised"]]
    if raised:
        lines += ["", "task exceptions:"]
        for name, t in raised:
            lines.append(f"  {name}: raised in {t['raised']} of {t['runs']} runs")
            lines += [f"    {e['count']} x {e['error']}" for e in t["exceptions"]]
    if doc["thresholds"]:
        lines += [
            "",
            *_table(
                ["threshold", "actual", "result"],
                [
                    [
                        t["expression"],
                        "-" if t["actual"] is None else f"{t['actual']:.4g}",
                        "pass" if t["passed"] else f"FAIL{' (' + t['reason'] + ')' if t['reason'] else ''}",
                    ]
                    for t in doc["thresholds"]
                ],
            ),
        ]
    if doc["baseline"]:
        regress = [r for r in doc["baseline"]["comparisons"] if r["regression"]]
        lines.append("")
        lines.append(f"baseline {doc['baseline']['file']}: {len(regress)} regression(s)")
        lines += [
            f"  REGRESSION {r['name']} {r['metric']}: {r['baseline']:.4g} -> {r['current']:.4g}"
            for r in regress
        ]
    if doc["warnings"]:
        lines += ["", *(f"WARNING: {w}" for w in doc["warnings"])]
    lines += ["", "PASSED" if doc["passed"] else "FAILED" + (" (INTERRUPTED)" if doc["interrupted"] else "")]
    lines += [f"  - {f}" for f in doc["failures"]]
    return "\n".join(lines)
