"""What perfkit must get right about a real app, as functions of one run (`harness.Outcome`).

Each check returns a list of problems (empty: it holds), so the tests can assert `== []` and the CLI
(`python -m tests.realapps.harness`) can print every failing figure. Two sources of traffic are checked:
`probe` (the app's own test suite with perfkit wired in as the README says) and `drive` (driver.py).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

UNMATCHED = "<unmatched>"
# perfkit.db's label for a statement run outside any request (a test fixture's session, start-up): not a route
NO_REQUEST = "-"
# perfkit's mean latency vs the client's, per route: within 0.1 ms + 2 % (in-process, the two clocks start
# and stop microseconds apart; time spent after the last byte, e.g. a dependency's teardown, is 5-12 %)
LATENCY_ABS_MS = 0.1
LATENCY_REL = 0.02


def percentile(values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return None
    s = sorted(values)
    k = (len(s) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def groups(source: dict[str, Any]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Requests by (method, the framework's template), for requests the app routes."""
    out: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in source.get("requests", []):
        if r.get("expected"):
            out[r["method"], r["expected"]].append(r)
    return dict(out)


def _row(source: dict[str, Any], method: str, template: str) -> dict[str, Any] | None:
    row = source.get("report_routes", {}).get(f"{method} {template}")
    return row if isinstance(row, dict) else None


def _sources(outcome: Any) -> list[tuple[str, dict[str, Any]]]:
    return [
        (name, s) for name, s in (("probe", outcome.probe), ("drive", outcome.drive)) if s.get("requests")
    ]


def suite_passes_bare(outcome: Any) -> list[str]:
    want = int(outcome.app.spec["expect_passed"])
    if outcome.bare_passed != want:
        return [f"the app's own suite passed {outcome.bare_passed} bare, realapp.json expects {want}"]
    return []


def suite_passes_wired(outcome: Any) -> list[str]:
    problems = []
    if outcome.wired_passed != outcome.bare_passed:
        problems.append(
            f"with perfkit wired in the suite passed {outcome.wired_passed}, bare {outcome.bare_passed}"
        )
    if not outcome.probe.get("instrumented"):
        problems.append("the wired app has no perfkit Instrumentation (app.state.perfkit)")
    return problems


def route_labels(outcome: Any) -> list[str]:
    """Each routed request is counted under its full template (prefixes included), by method."""
    problems = []
    for name, source in _sources(outcome):
        for (method, template), reqs in sorted(groups(source).items()):
            row = _row(source, method, template)
            got = None if row is None else row.get("requests")
            if got != len(reqs):
                problems.append(f"{name}: {method} {template}: {len(reqs)} requests, the report has {got}")
    return problems


def labels_are_templates(outcome: Any) -> list[str]:
    """Every route label perfkit holds (metrics, findings, report rows) is a route of the app; no
    `<unmatched>` unless a request really matched no route."""
    problems = []
    for name, source in _sources(outcome):
        templates = {r["template"] for r in source.get("routes", [])}
        unrouted = any(not r.get("expected") for r in source.get("requests", []))
        seen = dict(source.get("labels", {}))
        for key in source.get("report_routes", {}):
            seen.setdefault(key.split(" ", 1)[1], ["report routes"])
        for label, where in sorted(seen.items()):
            if label == UNMATCHED and unrouted:
                continue
            if label == NO_REQUEST and all(w.startswith("metric db_") for w in where):
                continue
            if label not in templates:
                problems.append(
                    f"{name}: route label {label!r} ({', '.join(where)}) is not a route of the app"
                )
    return problems


def queries_per_method(outcome: Any) -> list[str]:
    """The report's queries per request, per method and route, equal what Server-Timing said."""
    problems = []
    for name, source in _sources(outcome):
        for (method, template), reqs in sorted(groups(source).items()):
            counts = [r["st_db_queries"] for r in reqs if r.get("st_db_queries") is not None]
            if len(counts) != len(reqs):
                problems.append(
                    f"{name}: {method} {template}: {len(reqs) - len(counts)} responses lack Server-Timing"
                )
                continue
            want = round(sum(counts) / len(counts), 2)
            row = _row(source, method, template)
            got = None if row is None else row.get("db_queries_per_request")
            if got is None or abs(float(got) - want) > 0.011:
                problems.append(
                    f"{name}: {method} {template}: Server-Timing {want} queries/request, report {got}"
                )
    return problems


def rules_by_name(outcome: Any) -> list[str]:
    """A Rule(name=<route name>) applies to that route: its Cache-Control on every 2xx GET."""
    problems = []
    by_template = groups(outcome.drive)
    for rule in outcome.drive.get("rules", []):
        if rule["kind"] != "name":
            continue
        reqs = [r for r in by_template.get(("GET", rule["template"]), []) if 200 <= (r["status"] or 0) < 300]
        if not reqs:
            problems.append(f"rule name={rule['name']!r}: no 2xx GET of {rule['template']} to check it on")
            continue
        wrong = [r["cache_control"] for r in reqs if r["cache_control"] != rule["cache_control"]]
        if wrong:
            problems.append(
                f"rule name={rule['name']!r} ({rule['template']}): Cache-Control {wrong[0]!r} on "
                f"{len(wrong)}/{len(reqs)} responses, want {rule['cache_control']!r}"
            )
    return problems


def served_report_is_own(outcome: Any) -> list[str]:
    """The served app's report (its default monitor store, in the folder where the app's own tests
    just ran) counts the served app's requests only, not the test run's."""
    sent = len(outcome.drive.get("requests", []))
    got = outcome.drive.get("served_report_requests")
    if got != sent:
        return [f"the served app's report counts {got} requests; it served {sent}"]
    return []


def cache_respects_credentials(outcome: Any) -> list[str]:
    """The response cache never gives one client's answer to another: after the login's requests, no
    token, a bad token and a second user (when the driver could make one) get exactly what the app
    answered them before (401/403, their own data), never the login's body; by default a request with
    credentials is not served from the cache; and the cache is on (repeated public GETs hit)."""
    problems = []
    by_path: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in outcome.drive.get("requests", []):
        if r["method"] == "GET":
            by_path[r["path"]].append(r)
    cached = {r["path"] for r in outcome.drive.get("rules", []) if r["kind"] == "cache"}
    per_user = any(r.get("extra") for r in outcome.drive.get("rules", []) if r["kind"] == "cache")
    for path, reqs in sorted(by_path.items()):
        user_bodies = {
            r["body_sha"] for r in reqs if r["role"] == "admin" and 200 <= (r["status"] or 0) < 300
        }
        for role in ("anon", "invalid", "user2"):
            before = [r for r in reqs if r["role"] == role and r["phase"] == "before"]
            after = [r for r in reqs if r["role"] == role and r["phase"] == "after"]
            if not before or not after:
                continue
            a, b = after[0], before[0]
            if role != "user2" and 200 <= (b["status"] or 0) < 300:
                continue  # a public route: nothing to protect
            if a["status"] != b["status"] or a["body_sha"] != b["body_sha"]:
                leaked = " with the logged-in user's body" if a["body_sha"] in user_bodies else ""
                problems.append(
                    f"GET {path} as {role}: {a['status']}{leaked} (X-Cache {a['x_cache']}), "
                    f"the app answered it {b['status']}"
                )
        # the cache is on (a path rule, whatever the route resolution): repeated public GETs are hits
        anon = [r for r in reqs if r["role"] == "anon" and 200 <= (r["status"] or 0) < 300]
        if path in cached and len(anon) >= 2 and anon[-1]["x_cache"] != "HIT":
            problems.append(
                f"GET {path} (cache_ttl rule): a repeated anonymous GET got X-Cache {anon[-1]['x_cache']} "
                f"(Vary: {anon[-1].get('vary')})"
            )
        hits = [r for r in reqs if r["role"] in ("admin", "invalid", "user2") and r["x_cache"] == "HIT"]
        if per_user:  # opted in: a hit must replay that client's own earlier answer
            own = {(r["role"], r["body_sha"]) for r in reqs if r["x_cache"] != "HIT"}
            hits = [r for r in hits if (r["role"], r["body_sha"]) not in own]
            if hits:
                problems.append(
                    f"GET {path}: {len(hits)} per-user cache hits replayed another client's answer"
                )
        elif hits:
            problems.append(
                f"GET {path}: {len(hits)} requests with credentials were served from the response cache"
            )
    return problems


def latency_matches_client(outcome: Any) -> list[str]:
    """perfkit's latency per route is what the client measured to the last body byte (mean within
    0.1 ms + 2 %), and its percentiles never exceed the slowest request the client saw."""
    problems = []
    source = outcome.drive
    for (method, template), reqs in sorted(groups(source).items()):
        row = _row(source, method, template)
        if row is None:
            problems.append(f"{method} {template}: no report row to compare with the client's latency")
            continue
        client = [r["client_ms"] for r in reqs]
        mean = sum(client) / len(client)
        tolerance = LATENCY_ABS_MS + LATENCY_REL * mean
        if row.get("avg_ms") is None or abs(row["avg_ms"] - mean) > tolerance:
            problems.append(
                f"{method} {template}: perfkit avg {row.get('avg_ms')} ms, "
                f"client {mean:.2f} ms (n={len(reqs)})"
            )
        top = max(client)
        for q in ("p95_ms", "p99_ms"):
            if row.get(q) is not None and row[q] > top * (1 + LATENCY_REL) + LATENCY_ABS_MS:
                problems.append(
                    f"{method} {template}: perfkit {q[:3]} {row[q]} ms > the client's max {top:.2f} ms"
                )
    return problems


CHECKS = {
    "own suite passes bare (expect_passed)": suite_passes_bare,
    "own suite passes wired, same count": suite_passes_wired,
    "route labels are full templates, counted per method": route_labels,
    "no label outside the app's routes, no <unmatched>": labels_are_templates,
    "queries per request per method = Server-Timing": queries_per_method,
    "rules by route name apply": rules_by_name,
    "response cache never crosses credentials": cache_respects_credentials,
    "latency = the client's (to the last byte)": latency_matches_client,
    "served report counts only the served app": served_report_is_own,
}


def all_problems(outcome: Any) -> dict[str, list[str]]:
    return {name: check(outcome) for name, check in CHECKS.items()}


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.2f}" if isinstance(v, float) else str(v)


def summary(outcome: Any) -> str:
    """The figures for a note: versions, the client's view per route, and perfkit's report rows."""
    drive = outcome.drive
    lines = [
        f"== {outcome.app.name}: own suite {outcome.bare_passed} passed bare, {outcome.wired_passed} wired"
    ]
    if drive.get("versions"):
        lines.append("   " + ", ".join(f"{k} {v}" for k, v in drive["versions"].items()))
    for name, source in _sources(outcome):
        lines.append(
            f"-- {name}: what the client saw (Server-Timing queries; ms to the last body byte; "
            "returned: ms until the app's call returned)"
        )
        lines.append(
            f"   {'route':44} {'n':>4} {'q/req':>6} {'p50':>8} {'p95':>8} {'avg':>8} {'returned':>8}"
        )
        for (method, template), reqs in sorted(groups(source).items(), key=lambda kv: (kv[0][1], kv[0][0])):
            counts = [r["st_db_queries"] for r in reqs if r.get("st_db_queries") is not None]
            client = [r["client_ms"] for r in reqs if r.get("client_ms") is not None]
            q = sum(counts) / len(counts) if counts else None
            mean = sum(client) / len(client) if client else None
            back = [r["return_ms"] for r in reqs if r.get("return_ms") is not None]
            returned = sum(back) / len(back) if back else None
            lines.append(
                f"   {method + ' ' + template:44} {len(reqs):>4} {_fmt(q):>6} "
                f"{_fmt(percentile(client, 0.5)):>8} {_fmt(percentile(client, 0.95)):>8} "
                f"{_fmt(mean):>8} {_fmt(returned):>8}"
            )
        lines.append(f"-- {name}: perfkit's report")
        lines.append(f"   {'route':44} {'n':>4} {'q/req':>6} {'p50':>8} {'p95':>8} {'avg':>8}")
        for key, row in sorted(
            source.get("report_routes", {}).items(), key=lambda kv: (kv[0].split(" ", 1)[1], kv[0])
        ):
            lines.append(
                f"   {key:44} {row.get('requests'):>4} {_fmt(row.get('db_queries_per_request')):>6} "
                f"{_fmt(row.get('p50_ms')):>8} {_fmt(row.get('p95_ms')):>8} {_fmt(row.get('avg_ms')):>8}"
            )
    return "\n".join(lines)
