"""Doctor in-process (httpx's ASGITransport) on the monitor's ticket app: N+1 and slow routes fail."""

from __future__ import annotations

from perfkit.doctor import diagnose
from perfkit.monitor.config import Budgets
from tests.monitor import conftest
from tests.monitor.conftest import TOKEN, EnvFactory

make_env = conftest.make_env  # the monitor's app factory fixture, here too


async def test_n_plus_one_and_slow_routes_fail_with_their_fixes(make_env: EnvFactory) -> None:
    """/tickets lazy-loads comments per ticket, and a 1 µs p95 budget makes every route slow."""
    env = await make_env(budgets=Budgets(p95_ms=0.001))
    assert (await env.client.get("/tickets")).status_code == 200
    checklist = await diagnose("http://test", client=env.client, token=TOKEN, paths=["/tickets", "/big"])
    by_id = {r.id: r for r in checklist.results}
    assert by_id["n_plus_one"].status == "fail" and "comments" in by_id["n_plus_one"].detail
    assert "selectinload" in by_id["n_plus_one"].fix or "joinedload" in by_id["n_plus_one"].fix
    assert by_id["slow_routes"].status == "fail" and "GET /tickets" in by_id["slow_routes"].detail
    assert by_id["latency_budget"].status == "fail"
    assert by_id["keep_alive"].status == "skip"  # no connection in-process
    assert (
        by_id["compression"].status == "fail" and "/big" in by_id["compression"].detail
    )  # Rule(compress=False)
    assert checklist.exit_code() == 1
