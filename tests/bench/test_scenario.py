"""Scenario files: weighted tasks, request names, checks, think times, and name validation."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from perfkit.bench.scenario import load_scenario, static_names
from perfkit.bench.scenario_client import Response
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


def test_json_undoes_content_encoding(server: Server, tmp_path: Path) -> None:
    """A task asking for gzip gets `json()`, `text` and `body` decoded; `raw` keeps the wire bytes."""
    scenario = tmp_path / "gz.py"
    scenario.write_text(
        "from perfkit.bench import check, task\n"
        "@task()\nasync def t(client):\n"
        "    r = await client.get('/gzip', headers={'Accept-Encoding': 'gzip'}, name='gz')\n"
        "    check(r.json() == {'ok': True} and r.text == '{\"ok\": true}', 'decoded')\n"
        "    check(r.raw[:2] == b'\\x1f\\x8b' and r.headers['content-encoding'] == 'gzip', 'raw is gzip')\n"
    )
    code, doc = bench(tmp_path, str(scenario), "--host", server.url, "--users", "1", "--max-requests", "20")
    assert code == 0, doc["failures"]
    assert doc["checks"] == {"decoded": {"passes": 20, "fails": 0}, "raw is gzip": {"passes": 20, "fails": 0}}
    assert doc["tasks"]["t"] == {"runs": 20, "raised": 0, "exceptions": []}


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "identity"])
def test_response_decodes_each_content_encoding(coding: str) -> None:
    """gzip, deflate (zlib-wrapped or raw) and br bodies decode to the same JSON."""
    import zlib

    import brotli

    payload = b'{"n": [1, 2, 3]}'
    encoded = {
        "gzip": gzip.compress(payload),
        "deflate": zlib.compress(payload),
        "br": brotli.compress(payload),
        "identity": payload,
    }[coding]
    head = f"HTTP/1.1 200 OK\r\nContent-Encoding: {coding}".encode()
    assert Response(200, head, encoded).json() == {"n": [1, 2, 3]}
    raw_deflate = zlib.compressobj(wbits=-15)
    body = raw_deflate.compress(payload) + raw_deflate.flush()
    assert Response(200, b"HTTP/1.1 200 OK\r\nContent-Encoding: deflate", body).body == payload


def test_task_exceptions_are_shown_with_their_text(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A task that raises on every run: the summary and JSON carry the exception's type, message and
    scenario line, and the run fails (exit 1) unless --allow-errors."""
    scenario = tmp_path / "raises.py"
    scenario.write_text(
        "from perfkit.bench import task\n"
        "@task()\nasync def broken(client):\n"
        "    r = await client.get('/', name='home')\n"
        "    r.json()\n"
    )
    argv = [str(scenario), "--host", server.url, "--users", "1", "--max-requests", "30"]
    code, doc = bench(tmp_path, *argv)
    out = capsys.readouterr().out
    assert code == 1
    task = doc["tasks"]["broken"]
    assert task["runs"] == task["raised"] == 30
    assert task["exceptions"][0]["error"].startswith("JSONDecodeError: Expecting value")
    assert task["exceptions"][0]["error"].endswith("(raises.py:5)") and task["exceptions"][0]["count"] == 30
    assert "30 x JSONDecodeError: Expecting value" in out
    assert "task 'broken' raised on every one of its 30 runs" in out
    code, doc = bench(tmp_path, *argv, "--allow-errors")
    assert code == 0 and doc["passed"] and doc["warnings"]


def test_bare_task_decorator(server: Server, tmp_path: Path) -> None:
    """`@task` without parentheses marks a task of weight 1, as `@task()` does."""
    scenario = tmp_path / "bare.py"
    scenario.write_text(
        "from perfkit.bench import task\n"
        "@task\nasync def a(client):\n    await client.get('/', name='a')\n"
        "@task(weight=2)\nasync def b(client):\n    await client.get('/', name='b')\n"
    )
    loaded = load_scenario(str(scenario))
    assert [(name, weight) for name, _, weight in loaded.tasks] == [("a", 1), ("b", 2)]
    code, doc = bench(tmp_path, str(scenario), "--host", server.url, "--users", "1", "--max-requests", "30")
    assert code == 0 and doc["names"]["a"]["requests"] + doc["names"]["b"]["requests"] == 30


def test_every_response_an_error_fails_loudly(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No threshold and every response a 500: FAILED, exit 1, saying so; --allow-errors passes."""
    argv = [f"{server.url}/status/500", "--users", "1", "--max-requests", "20"]
    code, doc = bench(tmp_path, *argv)
    out = capsys.readouterr().out
    assert code == 1 and not doc["passed"]
    assert "every one of the 20 requests failed (status 500: 20)" in out
    assert out.rstrip().splitlines()[-2] == "FAILED"
    code, doc = bench(tmp_path, *argv, "--allow-errors")
    assert code == 0 and doc["passed"]


def test_some_errors_without_a_threshold_warn(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Errors in part of a run with no 'errors' threshold pass, with a WARNING naming the rate."""
    scenario = tmp_path / "mixed.py"
    scenario.write_text(
        "from perfkit.bench import task\n"
        "@task()\nasync def t(client):\n"
        "    await client.get('/', name='ok')\n"
        "    await client.get('/status/503', name='bad')\n"
    )
    code, doc = bench(tmp_path, str(scenario), "--host", server.url, "--users", "1", "--max-requests", "20")
    out = capsys.readouterr().out
    assert code == 0 and doc["passed"] and len(doc["warnings"]) == 1
    assert "WARNING: 50.00% of the requests failed (status 503: 10)" in out
