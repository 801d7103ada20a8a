"""Thresholds and exit codes: 0 pass, 1 failed, 2 usage error; never a silent pass."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from perfkit.bench.report.baseline import compare
from perfkit.bench.thresholds import evaluate, parse_threshold
from perfkit.cli import main
from perfkit.errors import ConfigurationError
from tests.bench.conftest import Server, bench


def test_parse_units() -> None:
    """Latency units, rates in % or fractions, per-name prefixes and any percentile parse."""
    assert parse_threshold("p95<500ms").limit == 500
    assert parse_threshold("p99<=1.5s").limit == 1500
    assert parse_threshold("max<250us").limit == 0.25
    assert parse_threshold("errors<1%").limit == pytest.approx(0.01)
    assert parse_threshold("errors<0.02").limit == pytest.approx(0.02)
    assert parse_threshold("rps>1000/s").limit == 1000
    t = parse_threshold("GET /items:p99.99<20ms")
    assert (t.name, t.metric, t.op, t.limit) == ("GET /items", "p99.99", "<", 20)


@pytest.mark.parametrize("expr", ["latency<5ms", "p95", "p95<fast", "errors<150%", "p101<1s", "x:checks>90%"])
def test_bad_thresholds_are_usage_errors(expr: str) -> None:
    """Unknown metrics, missing values, nonsense rates: ConfigurationError naming --threshold."""
    with pytest.raises(ConfigurationError, match="--threshold"):
        parse_threshold(expr)


def test_no_samples_fails() -> None:
    """A latency threshold on a name with no responses fails with reason 'no samples'."""
    doc = {"names": {"*": {"requests": 3, "latency_ms": {"count": 0}, "error_rate": 1.0}}, "checks": {}}
    result = evaluate(parse_threshold("p95<500ms"), doc)
    assert result["passed"] is False and result["reason"] == "no samples" and result["actual"] is None
    assert evaluate(parse_threshold("checks>99%"), doc)["reason"] == "no samples"


def test_exit_codes(server: Server, tmp_path: Path) -> None:
    """Passing thresholds exit 0, a failing one exits 1, and the report says which failed."""
    url = f"{server.url}/"
    code, doc = bench(
        tmp_path,
        url,
        "--users",
        "2",
        "--max-requests",
        "200",
        "--threshold",
        "p95<2s",
        "--threshold",
        "errors<1%",
        "--threshold",
        "GET /:requests>=200",
    )
    assert code == 0 and doc["passed"] is True
    assert [t["passed"] for t in doc["thresholds"]] == [True, True, True]
    code, doc = bench(
        tmp_path,
        url,
        "--users",
        "2",
        "--max-requests",
        "200",
        "--threshold",
        "p50<1us",
        "--threshold",
        "rps>1000000000",
    )
    assert code == 1 and doc["passed"] is False
    assert [t["passed"] for t in doc["thresholds"]] == [False, False]


def test_error_rate_threshold_fails_on_errors(server: Server, tmp_path: Path) -> None:
    """errors<1% fails when every response is a 500."""
    code, doc = bench(
        tmp_path,
        f"{server.url}/status/500",
        "--users",
        "2",
        "--max-requests",
        "50",
        "--threshold",
        "errors<1%",
    )
    assert code == 1 and doc["thresholds"][0]["actual"] == 1.0


def test_usage_errors_exit_2_before_any_load(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Unknown metric, unknown name, remote target, bad option: exit 2, one line, no request sent."""
    url = f"{server.url}/"
    assert main(["bench", url, "--threshold", "p95<<3", "-q"]) == 2
    assert main(["bench", url, "--threshold", "latency<3ms", "-q"]) == 2
    assert main(["bench", url, "--threshold", "checkout:p95<3ms", "-q"]) == 2
    assert "unknown request name 'checkout'" in capsys.readouterr().err
    assert main(["bench", "http://192.0.2.1/", "-q"]) == 2
    assert "--allow-remote" in capsys.readouterr().err
    assert main(["bench", url, "--rate", "10/s", "--users", "3", "-q"]) == 2
    assert main(["bench", url, "--duration", "48h", "-q"]) == 2
    assert main(["bench", "https://127.0.0.1/", "-q"]) == 2
    assert server.count() == 0


def test_baseline_regression(server: Server, tmp_path: Path) -> None:
    """A baseline 100x faster flags a regression; exit 1 only with --fail-on-regression."""
    code, doc = bench(tmp_path, f"{server.url}/slow?ms=20", "--users", "2", "--max-requests", "40")
    assert code == 0
    fast = json.loads(json.dumps(doc))
    for key in ("p50", "p95", "p99"):
        fast["names"]["*"]["latency_ms"][key] /= 100
    base = tmp_path / "base.json"
    base.write_text(json.dumps(fast))
    args = [f"{server.url}/slow?ms=20", "--users", "2", "--max-requests", "40", "--baseline", str(base)]
    code, doc = bench(tmp_path, *args)
    assert code == 0
    flagged = {(r["name"], r["metric"]) for r in doc["baseline"]["comparisons"] if r["regression"]}
    assert {("*", "p50"), ("*", "p95"), ("*", "p99")} <= flagged
    code, _ = bench(tmp_path, *args, "--fail-on-regression")
    assert code == 1
    assert not any(r["regression"] for r in compare(doc, doc))
    tiny = json.loads(json.dumps(doc))
    for key in ("p50", "p95", "p99"):
        tiny["names"]["*"]["latency_ms"][key] = 0.5  # +100 % but only 0.5 ms: under the 1 ms floor
    slower = json.loads(json.dumps(tiny))
    for key in ("p50", "p95", "p99"):
        slower["names"]["*"]["latency_ms"][key] = 1.0
    assert not any(
        r["regression"] for r in compare(slower, tiny) if r["name"] == "*" and r["metric"][0] == "p"
    )


def test_library_run_refuses_remote_targets() -> None:
    """The runner itself refuses a non-loopback endpoint unless the plan allows remote targets."""
    from perfkit.bench.plan import Plan
    from perfkit.bench.runner import run
    from perfkit.bench.target import make_target

    target = make_target("http://192.0.2.1/")
    with pytest.raises(ConfigurationError, match="--allow-remote"):
        run(Plan(endpoint=target.endpoint, target=target, duration=1))
