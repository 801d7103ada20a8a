"""Scenario files: weighted tasks, request names, checks, think times, and name validation."""

from __future__ import annotations

from pathlib import Path

from perfkit.bench.scenario import load_scenario, static_names
from perfkit.cli import main
from tests.bench.conftest import Server, bench

SHOP = str(Path(__file__).parent / "scenarios" / "shop.py")


def test_static_names() -> None:
    """Names come from name= literals, else METHOD path, without running the file."""
    assert load_scenario(SHOP).names == {"list", "order", "GET /chunked"}
    assert static_names("async def t(c):\n    await c.delete('/x?y=1')\n") == {"DELETE /x"}


def test_scenario_run_records_names_checks_and_weights(server: Server, tmp_path: Path) -> None:
    """A closed-model scenario run: per-name counts exact, checks all pass, weights ~3:1."""
    code, doc = bench(
        tmp_path,
        SHOP,
        "--host",
        server.url,
        "--users",
        "4",
        "--max-requests",
        "2000",
        "--threshold",
        "list:p99<5s",
        "--threshold",
        "checks>99%",
    )
    assert code == 0, doc["thresholds"]
    names = doc["names"]
    assert set(names) == {"*", "list", "order", "GET /chunked"}
    # the cap can stop a user between an order and its chunked GET: at most one per user
    assert 0 <= names["order"]["requests"] - names["GET /chunked"]["requests"] <= 4
    assert doc["sent"] == names["*"]["requests"] == server.count() == 2000
    assert 2.2 < names["list"]["requests"] / names["order"]["requests"] < 4.0
    checks = doc["checks"]
    assert checks["list is json"] == {"passes": names["list"]["requests"], "fails": 0}
    assert checks["order created"]["fails"] == 0 and checks["chunked body"]["fails"] == 0
    assert names["order"]["status_codes"] == {"201": names["order"]["requests"]}


def test_scenario_open_model(server: Server, tmp_path: Path) -> None:
    """Open model over a scenario: iterations start at the rate; requests are counted exactly."""
    code, doc = bench(tmp_path, SHOP, "--host", server.url, "--rate", "200/s", "--duration", "1s")
    assert code == 0
    assert doc["sent"] == doc["names"]["*"]["requests"] == server.count()
    iterations = doc["names"]["list"]["requests"] + doc["names"]["order"]["requests"]
    assert 190 <= iterations <= 210


def test_failed_checks_fail_a_checks_threshold(server: Server, tmp_path: Path) -> None:
    """A check that fails shows in the report and fails 'checks>99%'."""
    scenario = tmp_path / "bad.py"
    scenario.write_text(
        "from perfkit.bench import check, task\n"
        "@task()\nasync def t(client):\n"
        "    r = await client.get('/status/404', name='missing')\n"
        "    check(r.status == 200, 'is 200')\n"
    )
    code, doc = bench(
        tmp_path,
        str(scenario),
        "--host",
        server.url,
        "--users",
        "1",
        "--max-requests",
        "20",
        "--threshold",
        "checks>99%",
    )
    assert code == 1
    assert doc["checks"] == {"is 200": {"passes": 0, "fails": 20}}
    assert doc["names"]["missing"]["errors_by_kind"]["status"] == 20


def test_scenario_usage_errors(server: Server, tmp_path: Path) -> None:
    """Unknown names, files without tasks and missing hosts are usage errors (exit 2)."""
    assert main(["bench", SHOP, "--host", server.url, "--threshold", "checkout:p95<1s", "-q"]) == 2
    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")
    assert main(["bench", str(empty), "--host", server.url, "-q"]) == 2
    nohost = tmp_path / "nohost.py"
    nohost.write_text("from perfkit.bench import task\n@task()\nasync def t(c):\n    await c.get('/')\n")
    assert main(["bench", str(nohost), "-q"]) == 2
    assert main(["bench", str(tmp_path / "missing.py"), "-q"]) == 2
    assert server.count() == 0
