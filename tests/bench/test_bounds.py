"""Every run is bounded: the open model stops sending at the end of --duration, counts the arrivals it
could not send as dropped (a failure unless --allow-dropped), and gives requests in flight at most
--timeout. Each test runs `perfkit bench` as a real process against a deliberately slow server."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest

from perfkit.bench.report.json_schema import SCHEMA
from perfkit.bench.stop import GRACE
from tests.bench.conftest import Server, bench_process

STARTUP = 2.5  # interpreter start, imports and report writing, on a loaded 2-core CI machine
SHOP = str(Path(__file__).parent / "scenarios" / "shop.py")


def _bound(duration: float, timeout: float) -> float:
    return duration + GRACE + timeout + STARTUP


def _assert_exact(doc: dict[str, object], server: Server) -> None:
    total = doc["names"]["*"]  # type: ignore[index]
    assert doc["sent"] == total["requests"] == server.count()  # type: ignore[index]


def test_rate_above_a_slow_server_stops_at_the_deadline(server: Server, tmp_path: Path) -> None:
    """--rate 2000/s for 1 s on a 300 ms endpoint ends within duration + timeout; the unsent
    arrivals are dropped, shown in the summary and JSON, and fail the run (exit 1)."""
    code, doc, out, _, wall = bench_process(
        tmp_path, f"{server.url}/slow?ms=300", "--rate", "2000/s", "--duration", "1s", "--timeout", "1s"
    )
    assert wall <= _bound(1, 1), wall
    assert code == 1
    jsonschema.validate(doc, SCHEMA)
    assert doc["dropped"] > 1000 and doc["sent"] + doc["dropped"] == 2000
    assert not doc["passed"] and any("dropped" in f for f in doc["failures"])
    assert f"dropped {doc['dropped']}" in out and "--allow-dropped" in out
    _assert_exact(doc, server)


def test_allow_dropped_passes_but_still_counts(server: Server, tmp_path: Path) -> None:
    """With --allow-dropped the same overload exits 0, and the dropped count is still reported."""
    code, doc, out, _, wall = bench_process(
        tmp_path,
        f"{server.url}/slow?ms=300",
        "--rate",
        "2000/s",
        "--duration",
        "1s",
        "--timeout",
        "1s",
        "--allow-dropped",
    )
    assert wall <= _bound(1, 1), wall
    assert code == 0 and doc["passed"]
    assert doc["dropped"] > 1000 and any("dropped" in w for w in doc["warnings"])
    assert "WARNING:" in out and "PASSED" in out


def test_absurd_rate_is_bounded(server: Server, tmp_path: Path) -> None:
    """--rate 1e12/s --duration 1s (which used to run until killed) ends within its bound."""
    code, doc, _, _, wall = bench_process(
        tmp_path, f"{server.url}/", "--rate", "1e12/s", "--duration", "1s", "--timeout", "1s"
    )
    assert wall <= _bound(1, 1), wall
    assert code == 1
    assert doc["dropped"] > 0 and doc["sent"] > 0
    _assert_exact(doc, server)


def test_in_flight_requests_get_at_most_the_timeout(server: Server, tmp_path: Path) -> None:
    """Requests still in flight at the end (a 20 s endpoint) are cut at --timeout and counted as
    timeouts: the run does not wait for them."""
    code, doc, _, _, wall = bench_process(
        tmp_path, f"{server.url}/slow?ms=20000", "--rate", "20/s", "--duration", "1s", "--timeout", "1.5s"
    )
    assert wall <= _bound(1, 1.5), wall
    assert code == 1
    total = doc["names"]["*"]
    assert total["errors_by_kind"]["timeout"] == total["requests"] == doc["sent"] > 0


@pytest.mark.parametrize("processes", ["1", "2"])
def test_scenario_open_model_is_bounded(server: Server, tmp_path: Path, processes: str) -> None:
    """A scenario in the open model against a slow server (and split over 2 processes) stops at the
    deadline too, and counts the iterations it never started as dropped."""
    scenario = tmp_path / "slow.py"
    scenario.write_text(
        "from perfkit.bench import task\n"
        "@task\nasync def slow(client):\n"
        "    await client.get('/slow?ms=300', name='slow')\n"
    )
    code, doc, _, _, wall = bench_process(
        tmp_path,
        str(scenario),
        "--host",
        server.url,
        "--rate",
        "500/s",
        "--duration",
        "1s",
        "--connections",
        "4",
        "--timeout",
        "1s",
        "--processes",
        processes,
    )
    assert wall <= _bound(1, 1) + (1.5 if processes == "2" else 0), wall
    assert code == 1
    assert doc["dropped"] > 300 and doc["sent"] + doc["dropped"] == 500  # every arrival is accounted for
    _assert_exact(doc, server)
