"""Helpers that run INSIDE a real app's virtual environment (driver.py, realapp_probe.py).

Only the standard library, the app and perfkit are importable there: nothing from the perfkit test suite.
Everything here reads the framework's own view of the app (its route table, its route names) so the
suite can compare perfkit's view against it.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Iterable
from typing import Any

UNMATCHED = "<unmatched>"
_PARAM = re.compile(r"{([a-zA-Z_][a-zA-Z0-9_]*)(?::([a-zA-Z_][a-zA-Z0-9_]*))?}")
_DB = re.compile(r'db;dur=([0-9.]+);desc="(\d+) queries"')
_TOTAL = re.compile(r"total;dur=([0-9.]+)")


def load(ref: str) -> Any:
    """`module:attribute` (dots allowed in the attribute) -> the object."""
    module, _, attr = ref.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def template_regex(template: str) -> re.Pattern[str]:
    """The regex a Starlette-style template matches (`{x}` one segment, `{x:path}` anything)."""
    out, pos = "", 0
    for m in _PARAM.finditer(template):
        out += re.escape(template[pos : m.start()])
        out += "(.*)" if m.group(2) == "path" else "([^/]+)"
        pos = m.end()
    return re.compile("^" + out + re.escape(template[pos:]) + "$")


def _route_contexts(routes: Iterable[Any]) -> list[Any]:
    """FastAPI >= 0.137 keeps included routers as objects; its own iterator flattens them with prefixes."""
    try:
        from fastapi.routing import iter_route_contexts  # type: ignore[attr-defined]
    except ImportError:
        return list(routes)
    return list(iter_route_contexts(list(routes)))


def walk_routes(routes: Iterable[Any], prefix: str = "") -> list[dict[str, Any]]:
    """Every HTTP route of the app in matching order: full template (prefixes included), name, methods."""
    out: list[dict[str, Any]] = []
    for route in _route_contexts(routes):
        path = getattr(route, "path", None)
        if path is None:
            continue
        children = getattr(route, "routes", None)
        if children is not None and getattr(route, "methods", None) is None:  # Mount / Host-less router
            out += walk_routes(children, prefix + path.rstrip("/"))
            continue
        if type(route).__name__.endswith("WebSocketRoute"):
            continue
        methods = sorted(getattr(route, "methods", None) or ["GET"])
        out.append({"template": prefix + path, "name": getattr(route, "name", None), "methods": methods})
    return out


def app_routes(app: Any) -> list[dict[str, Any]]:
    """The framework's route table, and for OpenAPI apps whether each operation is in the schema."""
    routes = walk_routes(getattr(app, "routes", []))
    paths: dict[str, Any] | None = None
    if callable(getattr(app, "openapi", None)):
        paths = app.openapi().get("paths", {})
    for r in routes:
        ops = (paths or {}).get(r["template"], {})
        r["api"] = paths is None or any(m.lower() in ops for m in r["methods"])
        r["secured"] = any("security" in ops.get(m.lower(), {}) for m in r["methods"])
    return routes


def expected_template(routes: list[dict[str, Any]], method: str, path: str) -> str | None:
    """The template the framework routes (method, path) to: a full match first, else a path match
    (405); None when nothing matches (a 404: perfkit says `<unmatched>`)."""
    partial = None
    for r in routes:
        if template_regex(r["template"]).match(path):
            if method in r["methods"] or (method == "HEAD" and "GET" in r["methods"]):
                return str(r["template"])
            partial = partial or str(r["template"])
    return partial


def server_timing(value: str | None) -> dict[str, float | None]:
    """`total` ms and the `db` query count out of a perfkit Server-Timing header."""
    db = _DB.search(value or "")
    total = _TOTAL.search(value or "")
    return {
        "st_total_ms": float(total.group(1)) if total else None,
        "st_db_queries": int(db.group(2)) if db else None,
    }


def route_labels(snapshot: dict[str, Any]) -> dict[str, list[str]]:
    """Every `route` label value in the collector's metrics and findings, by where it was seen."""
    seen: dict[str, set[str]] = {}
    for name, entry in snapshot.get("metrics", {}).items():
        labels = entry.get("labels", [])
        if "route" not in labels:
            continue
        i = labels.index("route")
        for values, _ in entry.get("series", []):
            seen.setdefault(str(values[i]), set()).add(f"metric {name}")
    for kind, items in snapshot.get("findings", {}).items():
        for f in items:
            if f.get("route") is not None:  # None: a statement outside any request (startup, a script)
                seen.setdefault(str(f["route"]), set()).add(f"finding {kind}")
    return {label: sorted(where) for label, where in sorted(seen.items())}


def handle_of(app: Any) -> Any:
    """The `Instrumentation` perfkit.instrument() left on the app (Starlette) or on its wrapper."""
    handle = getattr(getattr(app, "state", None), "perfkit", None)
    return handle if handle is not None else getattr(app, "perfkit", None)


async def perfkit_view(handle: Any) -> dict[str, Any]:
    """What perfkit reports about this process's requests (a report over its collector alone), every
    route label it holds, and the total the served app's own monitor reports (its default store)."""
    from perfkit.monitor import Monitor, MonitorConfig

    snapshot = handle.collector.snapshot()
    report = await Monitor(MonitorConfig(url="memory://"), collector=handle.collector).report()
    served = None
    if handle.monitor is not None:
        served = (await handle.monitor.report())["kpis"]["requests"]["requests"]
    return {
        "report_routes": report.get("routes", {}),
        "report_findings": {k: v for k, v in report.get("findings", {}).items() if isinstance(v, list)},
        "recommendations": report.get("recommendations", []),
        "served_report_requests": served,
        "labels": route_labels(snapshot),
    }


def dump(path: str, data: dict[str, Any]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1, default=str)
