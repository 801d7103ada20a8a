"""Drawing a frame with rich: a summary line per app, routes, queues and processes as tables."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

from perfkit.top.frame import SORTS, Frame, sort_routes


def _n(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def short(app: str) -> str:
    """An app's name for a column: host:port of a URL, the store URL as given."""
    return urlsplit(app).netloc if app.startswith(("http://", "https://")) else app


def render(frames: list[Frame], sort: str, reverse: bool, errors: dict[str, str], height: int = 40) -> Any:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    fleet = len(frames) + len(errors) > 1
    title = next(t for k, t, _ in SORTS if k == sort)
    arrow = "^" if reverse == (sort != "route") else "v"
    head = Text(
        f"perfkit top  {time.strftime('%H:%M:%S')}  sort: {title} {arrow}   keys: s sort  r reverse  q quit",
        style="bold",
    )
    summary = Table(box=None, pad_edge=False, expand=False)
    width = max([len(short(f.app)) for f in frames] + [3])
    for col in ("app", "req/s", "p50 ms", "p95 ms", "p99 ms", "err/s", "db q/s", "cache hit", "rt conns"):
        if col == "app":
            summary.add_column(col, no_wrap=True, min_width=width)
        else:
            summary.add_column(col, justify="right", no_wrap=True)
    for f in frames:
        o, per = f.overall, f.seconds or 1.0
        summary.add_row(
            short(f.app), _n(o["requests"] / per, 2), _n(o["p50_ms"]), _n(o["p95_ms"]), _n(o["p99_ms"]),
            _n(o["errors"] / per, 2), _n(f.db_queries_per_s, 2), _pct(f.cache_hit_ratio),
            _n(f.realtime_connections, 0),
        )  # fmt: skip
    down = [Text(f"{short(app)} unreachable: {why}", style="red") for app, why in errors.items()]
    routes = Table(title="routes", title_justify="left", expand=False)
    if fleet:
        routes.add_column("app", no_wrap=True)
    ordered = [SORTS[-1], *SORTS[:-1]]  # the route first, then the figures
    for key, col, _ in ordered:
        style = "bold reverse" if key == sort else ""
        routes.add_column(col, justify="left" if key == "route" else "right", header_style=style)
    budget = max(3, height - 14 - sum(len(f.processes) + len(f.queues) for f in frames))
    shown = sort_routes(frames, sort, reverse)
    for r in shown[:budget]:
        cells = {
            "route": r["route"], "rps": _n(r["rps"], 2), "p50": _n(r["p50_ms"]), "p95": _n(r["p95_ms"]),
            "p99": _n(r["p99_ms"]), "errors": _n(r["errors_per_s"], 2), "db": _n(r["db_per_request"]),
        }  # fmt: skip
        routes.add_row(*([short(r["app"])] if fleet else []), *(cells[k] for k, _, _ in ordered))
    parts: list[Any] = [head, summary, *down, routes]
    if len(shown) > budget:
        parts.append(Text(f"... {len(shown) - budget} more routes", style="dim"))
    queues = [q for f in frames for q in f.queues]
    if queues:
        table = Table(title="queues", title_justify="left")
        for col in (*(["app"] if fleet else []), "queue", "ready", "done/s", "failed/s"):
            table.add_column(col, justify="left" if col in ("app", "queue") else "right")
        for q in queues:
            row = [q["queue"], _n(q["depth"], 0), _n(q["done_per_s"], 2), _n(q["failed_per_s"], 2)]
            table.add_row(*([short(q["app"])] if fleet else []), *row)
        parts.append(table)
    table = Table(title="processes", title_justify="left")
    for col in (
        *(["app"] if fleet else []),
        "process",
        "state",
        "cpu %",
        "rss MiB",
        "host cpu %",
        "host mem %",
    ):
        table.add_column(col, justify="left" if col in ("app", "process", "state") else "right")
    for p in (p for f in frames for p in f.processes):
        s = p.get("system") or {}
        rss = s.get("process_rss_bytes")
        row = [
            p["proc"], "live" if p.get("fresh") else f"stale {time.time() - p['at']:.0f}s",
            _n(s.get("process_cpu_percent")), _n(None if rss is None else rss / 2**20),
            _n(s.get("cpu_percent")), _n(s.get("memory_percent")),
        ]  # fmt: skip
        table.add_row(*([short(p["app"])] if fleet else []), *row)
    parts.append(table)
    return Group(*parts)
