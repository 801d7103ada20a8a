"""Tiny inline-SVG line and bar charts for the HTML report: no script, no CDN, no network."""

from __future__ import annotations

import math
from html import escape

W, H = 640, 260
ML, MR, MT, MB = 60, 16, 24, 40  # margins: room for tick labels
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e")

Series = tuple[str, list[tuple[float, float]]]  # (label, [(x, y)])


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step) + 1)]


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1000:
        return f"{v / 1000:g}k"
    return f"{v:.3g}"


def chart(
    title: str,
    series: list[Series],
    x_label: str,
    y_label: str,
    *,
    bars: bool = False,
    x_ticks: list[tuple[float, str]] | None = None,
    chart_id: str = "",
) -> str:
    """An SVG chart of one or more series; `x_ticks` overrides the x axis labels (e.g. percentiles)."""
    pts = [p for _, s in series for p in s]
    out = [
        f'<svg class="plot" id="{escape(chart_id)}" viewBox="0 0 {W} {H}" width="{W}" height="{H}" '
        f'role="img" aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f'<text x="{ML}" y="16" class="title">{escape(title)}</text>',
    ]
    if not pts:
        out.append(
            f'<text x="{W / 2}" y="{H / 2}" text-anchor="middle" class="empty">no samples</text></svg>'
        )
        return "".join(out)
    x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
    y1 = max(p[1] for p in pts) * 1.05 or 1.0
    if x1 == x0:
        x1 = x0 + 1

    def sx(x: float) -> float:
        return ML + (x - x0) / (x1 - x0) * (W - ML - MR)

    def sy(y: float) -> float:
        return H - MB - y / y1 * (H - MT - MB)

    out.append(f'<line x1="{ML}" y1="{H - MB}" x2="{W - MR}" y2="{H - MB}" class="axis"/>')
    out.append(f'<line x1="{ML}" y1="{MT}" x2="{ML}" y2="{H - MB}" class="axis"/>')
    for t in _ticks(0, y1):
        out.append(f'<line x1="{ML}" y1="{sy(t):.1f}" x2="{W - MR}" y2="{sy(t):.1f}" class="grid"/>')
        out.append(f'<text x="{ML - 4}" y="{sy(t) + 4:.1f}" text-anchor="end">{_fmt(t)}</text>')
    for x, label in x_ticks if x_ticks is not None else [(t, _fmt(t)) for t in _ticks(x0, x1)]:
        if x0 <= x <= x1:
            out.append(f'<text x="{sx(x):.1f}" y="{H - MB + 14}" text-anchor="middle">{escape(label)}</text>')
    out.append(f'<text x="{(ML + W - MR) / 2}" y="{H - 6}" text-anchor="middle">{escape(x_label)}</text>')
    out.append(
        f'<text x="12" y="{(MT + H - MB) / 2}" text-anchor="middle" '
        f'transform="rotate(-90 12 {(MT + H - MB) / 2})">{escape(y_label)}</text>'
    )
    for i, (label, s) in enumerate(series):
        color = COLORS[i % len(COLORS)]
        if bars:
            width = max((W - ML - MR) / max(len(s), 1) * 0.8, 1.0)
            for x, y in s:
                out.append(
                    f'<rect class="series" x="{sx(x) - width / 2:.1f}" y="{sy(y):.1f}" width="{width:.1f}" '
                    f'height="{max(H - MB - sy(y), 0):.1f}" fill="{color}"/>'
                )
        else:
            d = " ".join(f"{'M' if j == 0 else 'L'}{sx(x):.1f},{sy(y):.1f}" for j, (x, y) in enumerate(s))
            out.append(f'<path class="series" d="{d}" fill="none" stroke="{color}" stroke-width="2"/>')
        out.append(
            f'<text x="{W - MR - 4}" y="{MT + 14 + 14 * i}" text-anchor="end" style="fill:{color}">'
            f"{escape(label)}</text>"
        )
    out.append("</svg>")
    return "".join(out)
