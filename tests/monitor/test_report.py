"""/perf/report: KPIs over a window against budgets, the score and recommendations from measurements."""

from __future__ import annotations

import json

from perfkit.monitor.config import Budgets
from perfkit.monitor.score import check_budgets, kpi_score, overall_score

from .conftest import AUTH, SECRET_PARAM, Env, EnvFactory


async def traffic(env: Env) -> None:
    for _ in range(2):
        assert (await env.client.get("/tickets")).status_code == 200
        assert (await env.client.get("/tickets/stats")).status_code == 200
        assert (await env.client.get("/search")).status_code == 200
    for i in range(12):  # 12 distinct keys, then 2 repeats: hit ratio 2/14
        await env.client.get(f"/cached?k={i % 12}")
    for _ in range(2):
        await env.client.get("/cached?k=0")
    big = await env.client.get("/big", headers={"accept-encoding": "gzip"})
    assert "content-encoding" not in big.headers


async def test_report_recommendations_come_from_measurements(env: Env) -> None:
    """N+1, queries per route, index, cache hit ratio and uncompressed responses become ranked advice."""
    await traffic(env)
    response = await env.client.get("/perf/report?window=5m", headers=AUTH)
    assert response.status_code == 200
    report = response.json()
    assert report["window_s"] == 300
    messages = [r["message"] for r in report["recommendations"]]
    assert "GET /tickets/stats runs 11 queries per request (budget 10)" in messages
    assert "N+1 on Ticket.comments: selectinload" in messages
    assert "sequential scan on tickets.status: add an index" in messages
    assert "cache hit ratio 14 % in namespace tickets" in messages
    assert any(m.startswith("GET /big: 1 responses over 1024 B sent uncompressed") for m in messages)
    impacts = [r["impact"] for r in report["recommendations"]]
    assert impacts == sorted(impacts, reverse=True)
    nplus = next(r for r in report["recommendations"] if r["kind"] == "n_plus_one")
    assert nplus["fix"] == ".options(selectinload(Ticket.comments))"
    routes = report["routes"]
    assert routes["GET /tickets/stats"]["requests"] == 2
    assert routes["GET /tickets/stats"]["db_queries_per_request"] == 11
    assert routes["GET /tickets"]["db_queries_per_request"] == 6
    assert report["kpis"]["cache"]["namespaces"]["tickets"]["hit_ratio"] == round(2 / 14, 4)
    slow = report["findings"]["slow_queries"]
    assert any(f.get("explain") for f in slow), "slow queries carry their EXPLAIN"


async def test_budgets_and_score(env: Env) -> None:
    """Each budgeted KPI is reported against its budget and the score is the documented weighted mean."""
    await traffic(env)
    for _ in range(3):
        assert (await env.client.get("/boom")).status_code == 500
    report = (await env.client.get("/perf/report", headers=AUTH)).json()
    assert report["window_s"] == 900
    budgets = {b["kpi"]: b for b in report["budgets"]}
    assert budgets["p95_ms"]["budget"] == 1000
    assert budgets["cache_hit_ratio"]["direction"] == "min"
    assert budgets["cache_hit_ratio"]["ok"] is False
    error_rate = report["kpis"]["requests"]["error_rate"]
    assert error_rate == round(3 / report["kpis"]["requests"]["requests"], 5)
    assert budgets["error_rate"]["ok"] is False
    assert report["score"] == overall_score(report["budgets"])
    assert 0 <= report["score"] < 100
    assert any(r["kind"] == "errors" and r["severity"] == "critical" for r in report["recommendations"])


def test_score_formula() -> None:
    """100 within budget, linear to 0 at twice the budget (ceilings) or half of it (floors)."""
    assert kpi_score(400, 500, "max") == 100
    assert kpi_score(750, 500, "max") == 50
    assert kpi_score(1000, 500, "max") == 0
    assert kpi_score(0.8, 0.8, "min") == 100
    assert kpi_score(0.4, 0.8, "min") == 0
    checks = check_budgets({"p95_ms": 1500.0, "error_rate": 0.0}, Budgets())
    assert overall_score(checks) == round((50 * 20 + 100 * 20) / 40)
    assert overall_score(check_budgets({}, Budgets())) is None


async def test_parameters_never_reported_unless_enabled(env: Env, make_env: EnvFactory) -> None:
    """Statement parameters stay out of the report and the findings API unless show_parameters is set."""
    await traffic(env)
    report = (await env.client.get("/perf/report", headers=AUTH)).text
    findings = (await env.client.get("/perf/api/findings?kind=slow_query", headers=AUTH)).text
    assert SECRET_PARAM not in report and SECRET_PARAM not in findings
    assert "parameters" not in json.dumps(json.loads(report)["findings"]["slow_queries"])


async def test_window_counts_published_and_unpublished(make_env: EnvFactory) -> None:
    """With the publisher running, the window adds the store's rollups and what is not yet written, once."""
    env = await make_env(publish_interval=3600)
    await env.monitor.start()
    await env.monitor.publisher.publish()  # the first write, as the background task would do
    for _ in range(3):
        await env.client.get("/big")
    await env.monitor.publisher.publish()
    for _ in range(2):
        await env.client.get("/big")
    report = (await env.client.get("/perf/report", headers=AUTH)).json()
    assert report["routes"]["GET /big"]["requests"] == 5
    history = (await env.client.get("/perf/api/history?since=10m", headers=AUTH)).json()["points"]
    assert sum(p["requests"] for p in history) == 3


async def test_job_failure_rate_and_wait(env: Env) -> None:
    """Job events from the hook give per-queue failure rate, wait and run time, and a recommendation."""

    @env.jobs.task(queue="email")
    async def flaky(ctx: object, n: int) -> int:
        if n % 2:
            raise ValueError("smtp down")
        return n

    for n in range(4):
        await flaky.enqueue(n)
    await env.jobs.worker(["email"], burst=True).run()
    report = (await env.client.get("/perf/report", headers=AUTH)).json()
    email = report["kpis"]["jobs"]["queues"]["email"]
    assert (email["succeeded"], email["failed"], email["failure_rate"]) == (2, 2, 0.5)
    assert email["wait_p95_ms"] is not None and email["run_p95_ms"] is not None
    assert "jobs in queue email fail 50 % of attempts" in [r["message"] for r in report["recommendations"]]
