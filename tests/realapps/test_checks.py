"""The conformance checks themselves, on small made-up runs: each one passes on a right answer and
names the figure on the wrong answers the template showed (so a green real-app run means something)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.realapps import checks, harness

ROUTES = [
    {"template": "/api/v1/items/", "name": "read_items", "methods": ["GET"]},
    {"template": "/api/v1/items/{id}", "name": "read_item", "methods": ["GET"]},
    {"template": "/api/v1/items/{id}", "name": "update_item", "methods": ["PUT"]},
]


def req(method: str, path: str, expected: str | None, **kw: Any) -> dict[str, Any]:
    base = {"method": method, "path": path, "expected": expected, "status": 200, "role": "admin",
            "phase": "auth", "client_ms": 10.0, "return_ms": 10.0, "cache_control": None, "x_cache": None,
            "body_sha": "user", "st_db_queries": 2}  # fmt: skip
    return {**base, **kw}


def outcome(drive: dict[str, Any], probe: dict[str, Any] | None = None) -> harness.Outcome:
    app = harness.RealApp(Path("/nowhere"), {"name": "t", "expect_passed": 3})
    return harness.Outcome(app, bare_passed=3, wired_passed=3, probe=probe or {}, drive=drive)


def row(n: int, q: float, avg: float = 10.0, p95: float = 10.0) -> dict[str, Any]:
    return {
        "requests": n,
        "db_queries_per_request": q,
        "avg_ms": avg,
        "p50_ms": avg,
        "p95_ms": p95,
        "p99_ms": p95,
    }


def test_route_labels_want_full_templates_per_method() -> None:
    """A report row under the template without its include_router prefix is a missing row."""
    reqs = [req("GET", "/api/v1/items/1", "/api/v1/items/{id}")] * 2
    right = {"routes": ROUTES, "requests": reqs, "report_routes": {"GET /api/v1/items/{id}": row(2, 2)}}
    assert checks.route_labels(outcome(right)) == []
    wrong = {**right, "report_routes": {"GET /items/{id}": row(2, 2)}}
    assert checks.route_labels(outcome(wrong)) == [
        "drive: GET /api/v1/items/{id}: 2 requests, the report has None"
    ]
    assert checks.labels_are_templates(outcome(wrong)) == [
        "drive: route label '/items/{id}' (report routes) is not a route of the app"
    ]


def test_unmatched_is_allowed_only_for_requests_that_matched_nothing() -> None:
    """`<unmatched>` in the labels is a problem unless some request really matched no route."""
    reqs = [req("GET", "/api/v1/items/", "/api/v1/items/")]
    drive = {"routes": ROUTES, "requests": reqs, "labels": {"<unmatched>": ["finding slow_query"]}}
    assert checks.labels_are_templates(outcome(drive)) == [
        "drive: route label '<unmatched>' (finding slow_query) is not a route of the app"
    ]
    drive["requests"] = [*reqs, req("GET", "/nope", None, status=404)]
    assert checks.labels_are_templates(outcome(drive)) == []


def test_statements_outside_requests_may_carry_the_no_request_label() -> None:
    """perfkit.db's `-` (a statement outside any request: a fixture's session) is fine on db metrics only."""
    reqs = [req("GET", "/api/v1/items/", "/api/v1/items/")]
    drive = {"routes": ROUTES, "requests": reqs, "labels": {"-": ["metric db_slow_query_duration_seconds"]}}
    assert checks.labels_are_templates(outcome(drive)) == []
    drive["labels"] = {"-": ["metric http_request_duration_seconds"]}
    assert checks.labels_are_templates(outcome(drive)) == [
        "drive: route label '-' (metric http_request_duration_seconds) is not a route of the app"
    ]


def test_queries_per_request_are_per_method() -> None:
    """GET 2 and PUT 4 queries (Server-Timing) summed into one route figure is caught, per method."""
    reqs = [req("GET", "/api/v1/items/1", "/api/v1/items/{id}", st_db_queries=2)] * 3
    reqs += [req("PUT", "/api/v1/items/1", "/api/v1/items/{id}", st_db_queries=4)]
    rows = {"GET /api/v1/items/{id}": row(3, 2.0), "PUT /api/v1/items/{id}": row(1, 4.0)}
    right = {"routes": ROUTES, "requests": reqs, "report_routes": rows}
    assert checks.queries_per_method(outcome(right)) == []
    summed = {
        **right,
        "report_routes": {"GET /api/v1/items/{id}": row(3, 3.33), "PUT /api/v1/items/{id}": row(1, 10.0)},
    }
    assert checks.queries_per_method(outcome(summed)) == [
        "drive: GET /api/v1/items/{id}: Server-Timing 2.0 queries/request, report 3.33",
        "drive: PUT /api/v1/items/{id}: Server-Timing 4.0 queries/request, report 10.0",
    ]


def test_rule_by_name_wants_its_cache_control() -> None:
    """A name rule whose Cache-Control never shows is reported with how many responses lacked it."""
    rule = {
        "kind": "name",
        "name": "read_item",
        "template": "/api/v1/items/{id}",
        "cache_control": "private, max-age=5",
    }
    good = [req("GET", "/api/v1/items/1", "/api/v1/items/{id}", cache_control="private, max-age=5")]
    assert checks.rules_by_name(outcome({"rules": [rule], "requests": good})) == []
    bad = [req("GET", "/api/v1/items/1", "/api/v1/items/{id}")]
    assert checks.rules_by_name(outcome({"rules": [rule], "requests": bad})) == [
        "rule name='read_item' (/api/v1/items/{id}): Cache-Control None on 1/1 responses, "
        "want 'private, max-age=5'"
    ]


def _cache_run(after_anon: dict[str, Any], admin_hit: bool) -> dict[str, Any]:
    path = "/api/v1/items/"
    reqs = [
        req("GET", path, path, role="anon", phase="before", status=401, body_sha="denied"),
        req("GET", path, path, role="admin", x_cache="MISS"),
        req("GET", path, path, role="admin", x_cache="HIT" if admin_hit else "MISS"),
        req("GET", path, path, **{"role": "anon", "phase": "after", **after_anon}),
    ]
    return {
        "rules": [{"kind": "cache", "path": path, "template": path, "cache_ttl": 60.0, "extra": {}}],
        "requests": reqs,
    }


def test_cache_must_not_give_the_users_answer_to_anyone_else() -> None:
    """After the user's requests an anonymous client still gets 401, not the user's cached body."""
    ok = _cache_run({"status": 401, "body_sha": "denied"}, admin_hit=False)
    assert checks.cache_respects_credentials(outcome(ok)) == []
    leak = _cache_run({"status": 200, "body_sha": "user", "x_cache": "HIT"}, admin_hit=True)
    assert checks.cache_respects_credentials(outcome(leak)) == [
        "GET /api/v1/items/ as anon: 200 with the logged-in user's body (X-Cache HIT), "
        "the app answered it 401",
        "GET /api/v1/items/: 1 requests with credentials were served from the response cache",
    ]


def test_per_user_opt_in_allows_a_client_its_own_hits_only() -> None:
    """With the opt-in hook set, a user's hit replaying its own earlier answer is fine."""
    run = _cache_run({"status": 401, "body_sha": "denied"}, admin_hit=True)
    run["rules"][0]["extra"] = {"cache_per_user": True}
    assert checks.cache_respects_credentials(outcome(run)) == []


def test_latency_is_the_clients_to_the_last_byte() -> None:
    """A mean that includes time after the last byte (a teardown) is caught; so is a p95 above the max."""
    reqs = [req("GET", "/api/v1/items/", "/api/v1/items/", client_ms=10.0)] * 4
    drive = {"requests": reqs, "report_routes": {"GET /api/v1/items/": row(4, 2, avg=10.05, p95=10.0)}}
    assert checks.latency_matches_client(outcome(drive)) == []
    drive["report_routes"] = {"GET /api/v1/items/": row(4, 2, avg=11.0, p95=24.0)}
    assert checks.latency_matches_client(outcome(drive)) == [
        "GET /api/v1/items/: perfkit avg 11.0 ms, client 10.00 ms (n=4)",
        "GET /api/v1/items/: perfkit p95 24.0 ms > the client's max 10.00 ms",
        "GET /api/v1/items/: perfkit p99 24.0 ms > the client's max 10.00 ms",
    ]


def test_served_report_counts_only_the_served_requests() -> None:
    """The served app's report counting the test run's requests too is caught."""
    drive = {"requests": [req("GET", "/api/v1/items/", "/api/v1/items/")], "served_report_requests": 1}
    assert checks.served_report_is_own(outcome(drive)) == []
    drive["served_report_requests"] = 7
    assert checks.served_report_is_own(outcome(drive)) == [
        "the served app's report counts 7 requests; it served 1"
    ]


def test_wiring_appends_the_readme_lines() -> None:
    """The wired run appends `import perfkit` and `app = perfkit.instrument(app, engine=...)`."""
    app = harness.RealApp(Path("/nowhere"), {"app": "app.main:app", "engine": "app.core.db:engine"})
    text = harness.wiring(app)
    assert "import perfkit\nfrom app.core.db import engine as _perfkit_engine\n" in text
    assert text.endswith("app = perfkit.instrument(app, engine=_perfkit_engine)\n")
