"""`perfkit lighthouse`: one real Lighthouse run (npm, cached in ~/.cache/perfkit-npm) with Debian's Chromium
against a small local page, folded into the JSON and a saved monitor report; and the usage errors
(malformed budgets, Lighthouse or Chromium missing), each exit 2 with one line, before anything runs."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from perfkit import cli
from perfkit.bench.lighthouse import parse_budget, runner
from perfkit.metrics import Collector
from perfkit.monitor import Monitor, MonitorConfig
from tests import _npm

CHROMIUM = "/usr/bin/chromium"
PAGE = b"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>shop</title></head>
<body><h1>Shop</h1><p>A small page for Lighthouse.</p></body></html>"""


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # (the http.server API names it)
        found = self.path == "/"
        body = PAGE if found else b"not found"
        self.send_response(200 if found else 404)
        self.send_header("content-type", "text/html; charset=utf-8" if found else "text/plain")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # quiet
        return


@pytest.fixture
def site() -> Iterator[str]:
    """A local page on a free port, served from a thread."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def one_line_usage_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert cli.main(["lighthouse", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("perfkit lighthouse: ") and "\n" not in err, err
    return err


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.skipif(
    not os.access(CHROMIUM, os.X_OK), reason=f"LIGHTHOUSE TEST SKIPPED: {CHROMIUM} is missing"
)
def test_a_real_run_is_scored_folded_and_gated(
    site: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Lighthouse scores the page; budgets that hold pass, a missed one exits 1 naming it; the scores and
    audits land in the JSON report and in the monitor report given."""
    folder = _npm.package("lighthouse", "^12")
    monitor = Monitor(MonitorConfig(url="memory://"), collector=Collector())
    saved = tmp_path / "monitor.json"
    saved.write_text(json.dumps(asyncio.run(monitor.report())))
    out = tmp_path / "lighthouse.json"
    argv = ["lighthouse", site, "--lighthouse", str(folder.parent.parent), "--json", str(out),
            "--monitor-report", str(saved), "--budget", "performance>=50", "--budget", "lcp<10s",
            "--budget", "cls<0.1", "--budget", "fcp<1ms"]  # fmt: skip
    assert cli.main(argv) == 1  # fcp<1ms cannot hold
    captured = capsys.readouterr()
    assert captured.err.strip() == f"perfkit lighthouse: budget missed: 'fcp<1ms' ({_fcp(out)})"
    assert "budget performance>=50:" in captured.out and "ok" in captured.out
    doc = json.loads(out.read_text())
    assert doc["url"] == site and doc["lighthouse_version"].startswith("12.")
    assert 50 <= doc["scores"]["performance"] <= 100
    assert set(doc["metrics"]) >= {"fcp", "lcp", "tbt", "si", "cls", "ttfb"}
    assert doc["metrics"]["lcp"]["unit"] == "ms" and doc["metrics"]["lcp"]["value"] > 0
    results = {b["expression"]: b["passed"] for b in doc["budgets"]}
    assert results == {"performance>=50": True, "lcp<10s": True, "cls<0.1": True, "fcp<1ms": False}
    assert doc["passed"] is False and isinstance(doc["audits"], list)
    folded = json.loads(saved.read_text())
    assert folded["lighthouse"]["scores"] == doc["scores"]
    mine = {b["kpi"]: b for b in folded["budgets"] if b.get("source") == "lighthouse"}
    assert (
        mine["lighthouse_performance"]["ok"] is True and mine["lighthouse_performance"]["direction"] == "min"
    )
    assert mine["lighthouse_fcp"]["ok"] is False and mine["lighthouse_fcp"]["budget"] == 1.0
    assert {b["kpi"] for b in folded["budgets"]} >= {"p95_ms", "lcp_p75_ms"}  # the monitor's own stay


def _fcp(path: Path) -> str:
    return f"{json.loads(path.read_text())['metrics']['fcp']['value']:.0f}ms"


@pytest.mark.parametrize(
    ("budget", "reason"),
    [
        ("lcp<fast", "'lcp<fast': 'fast' is not a number"),
        ("speed>90", "unknown metric 'speed'"),
        ("performance>=120", "a category score is between 0 and 100"),
        ("home:lcp<1s", "Lighthouse budgets have no request name"),
        ("performance", "is not [NAME:]METRIC<VALUE, e.g. 'performance>=90'"),
    ],
)
def test_bad_budgets_are_usage_errors(capsys: pytest.CaptureFixture[str], budget: str, reason: str) -> None:
    """A malformed or unknown budget exits 2 with one line naming it, before looking for Lighthouse."""
    err = one_line_usage_error(
        capsys, ["http://127.0.0.1:9/", "--budget", budget, "--lighthouse", "/nonexistent"]
    )
    assert err.startswith("perfkit lighthouse: --budget: ") and reason in err, err


def test_budget_units_follow_bench_thresholds() -> None:
    """`lcp<2.5s` is 2500 ms, `tbt<300us` 0.3 ms, `cls<0.1` unitless, `performance>=90` a score."""
    assert parse_budget("lcp<2.5s").limit == 2500.0
    assert parse_budget("tbt<300us").limit == pytest.approx(0.3)
    assert parse_budget("cls<0.1").limit == 0.1
    best = parse_budget("best-practices>=90")
    assert best.category and best.limit == 90.0


def test_missing_lighthouse_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not on PATH, not in ./node_modules, not where --lighthouse points: exit 2 with the install hint."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))
    err = one_line_usage_error(capsys, ["http://127.0.0.1:9/"])
    assert "Lighthouse is not installed: `npm install lighthouse`" in err
    err = one_line_usage_error(capsys, ["http://127.0.0.1:9/", "--lighthouse", str(tmp_path / "nope")])
    assert f"no Lighthouse at {tmp_path / 'nope'}" in err


def test_missing_chromium_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No Chromium anywhere it is looked for (or a --chrome that is not one): exit 2 with the apt hint."""
    cli_file = tmp_path / "lighthouse.js"
    cli_file.write_text("// a stand-in CLI: never run, the Chromium check comes first\n")
    monkeypatch.delenv("CHROME_PATH", raising=False)
    monkeypatch.setattr(runner, "DEBIAN_CHROMIUM", str(tmp_path / "no-chromium"))
    node = tmp_path / "node"  # a stand-in Node.js on an otherwise empty PATH: never run either
    node.write_text("#!/bin/sh\nexit 1\n")
    node.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    err = one_line_usage_error(capsys, ["http://127.0.0.1:9/", "--lighthouse", str(cli_file)])
    assert "Chromium is not installed: `apt-get install -y chromium`" in err
    err = one_line_usage_error(
        capsys, ["http://127.0.0.1:9/", "--lighthouse", str(cli_file), "--chrome", str(tmp_path / "x")]
    )
    assert f"--chrome: {tmp_path / 'x'} is not an executable Chromium" in err


def test_a_non_http_url_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """Lighthouse audits web pages: a file path or another scheme is refused with exit 2."""
    assert "is not an http:// or https:// URL" in one_line_usage_error(capsys, ["file:///etc/passwd"])
