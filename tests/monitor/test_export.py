"""`perfkit export grafana` and `perfkit export alerts`: every query names a series a real scrape has,
the dashboard has the fields Grafana's import reads, and promtool accepts the rules."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from perfkit.cli import main
from perfkit.monitor.grafana import SCHEMA_VERSION, dashboard
from perfkit.monitor.promrules import render, rule_groups
from perfkit.realtime.metrics import RealtimeMetrics
from perfkit.web import Rule, WebConfig
from tests.conftest import under_ci

from .conftest import AUTH, EnvFactory

_NAME = re.compile(r"\bperfkit_[a-z0-9_]+")
_PANEL_TYPES = {"row", "timeseries"}


@pytest.fixture
async def scraped(make_env: EnvFactory) -> set[str]:
    """The sample names of one scrape of an app with every part perfkit measures (web, rate limit,
    response cache, db, cache, jobs, real-time), after traffic through each."""
    web = WebConfig(
        rate_limit="1000/minute",
        rules=[Rule(path="/big", compress=False), Rule(path="/search", cache_ttl=30)],
    )
    env = await make_env(web=web)
    RealtimeMetrics(env.collector)  # what a perfkit.realtime Hub registers on the app's collector

    @env.jobs.task(name="export-noop")
    async def noop(ctx: Any) -> None:
        return None

    for path in ("/cached?k=a", "/cached?k=a", "/tickets", "/big", "/boom", "/search", "/search"):
        await env.client.get(path, headers={"accept-encoding": "gzip"})
    await noop.enqueue()
    await env.jobs.worker(burst=True).run()
    response = await env.client.get("/perf/metrics", headers=AUTH)
    assert response.status_code == 200
    names = set()
    for family in text_string_to_metric_families(response.text):
        names |= {s.name for s in family.samples}
        # a family exported before its first sample (HELP and TYPE lines): the series it will have
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}.get(
            family.type, ("",)
        )
        names |= {family.name + suffix for suffix in suffixes}
    assert "perfkit_http_request_duration_seconds_bucket" in names
    return names


def _exprs(doc: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in doc["panels"] for t in p.get("targets", ())]


def test_dashboard_has_the_fields_grafana_imports() -> None:
    """Unique panel ids, grid positions inside 24 columns, known panel types, a datasource variable
    every query uses, refIds per panel, and JSON that round-trips."""
    doc = json.loads(json.dumps(dashboard()))
    assert doc["schemaVersion"] == SCHEMA_VERSION and doc["uid"] == "perfkit" and doc["title"]
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"]: v for v in doc["templating"]["list"]}
    assert (
        variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    )
    assert variables["route"]["datasource"]["uid"] == "${datasource}"
    for panel in doc["panels"]:
        assert panel["type"] in _PANEL_TYPES, panel["title"]
        pos = panel["gridPos"]
        assert all(isinstance(pos[k], int) for k in ("h", "w", "x", "y"))
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(refs) == len(set(refs))
        assert all(t["datasource"]["uid"] == "${datasource}" and t["expr"] for t in panel["targets"])
    titles = {p["title"] for p in doc["panels"]}
    for wanted in ("Throughput by route", "Latency percentiles by route", "Error rate (5xx) by route",
                   "DB queries per request by route", "Slow queries", "Hit ratio by tier and namespace",
                   "Queue depth", "Wait time p95 by queue", "Run time p95 by queue", "Rate-limit rejections",
                   "Connections"):  # fmt: skip
        assert wanted in titles


async def test_every_dashboard_query_names_a_scraped_series(scraped: set[str]) -> None:
    """Each `perfkit_*` name in the dashboard's queries is a series a real `/perf/metrics` scrape has."""
    used = {name for expr in _exprs(dashboard()) for name in _NAME.findall(expr)}
    assert len(used) > 20
    assert used <= scraped, sorted(used - scraped)


async def test_every_alert_rule_names_a_scraped_series(scraped: set[str]) -> None:
    """Each `perfkit_*` name in the budget rules and the KPI rules is a series a real scrape has."""
    kpis = ["p50", "p95", "p99", "avg", "error_rate", "throughput", "cache_hit_ratio", "job_failure_rate",
            "db_p95", "cpu", "memory", "disk"]  # fmt: skip
    doc = rule_groups(rules=[f"{kpi} > 1" for kpi in kpis])
    used = {n for g in doc["groups"] for r in g["rules"] for n in _NAME.findall(r["expr"])}
    assert used <= scraped, sorted(used - scraped)
    assert len(doc["groups"][1]["rules"]) == len(kpis)


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        message = "promtool not installed (Debian: apt-get install prometheus): SKIPPING the rules check"
        if under_ci():
            pytest.fail(message + " [CI=true: .ci/run installs it]", pytrace=False)
        pytest.skip(message)
    return found


def test_promtool_accepts_the_rules_the_cli_writes(tmp_path: Path) -> None:
    """`perfkit export alerts` with budgets and rules writes a file `promtool check rules` accepts."""
    promtool = _promtool()
    out = tmp_path / "perfkit-rules.yml"
    code = main(["export", "alerts", "-o", str(out), "--budget", "p95_ms=800", "--rule", "p95 > 500ms for 5m",
                 "--rule", "cache_hit_ratio < 70% over 2m", "--rule", "job_failure_rate >= 10%"])  # fmt: skip
    assert code == 0
    text = out.read_text()
    assert "> 800" in text and "for: 300s" in text and "[120s]" in text
    checked = subprocess.run(
        [promtool, "check", "rules", str(out)], capture_output=True, text=True, timeout=30
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 14 rules found" in checked.stdout


def test_promtool_rejects_a_broken_rule_file(tmp_path: Path) -> None:
    """The check can fail: a rule whose expression is not PromQL is refused by promtool."""
    promtool = _promtool()
    doc = rule_groups()
    doc["groups"][0]["rules"][0]["expr"] = "sum(rate(perfkit_http_request_duration_seconds_count[5m]) >"
    out = tmp_path / "broken.yml"
    out.write_text(render(doc))
    checked = subprocess.run(
        [promtool, "check", "rules", str(out)], capture_output=True, text=True, timeout=30
    )
    assert checked.returncode != 0


def test_grafana_cli_writes_the_dashboard(tmp_path: Path) -> None:
    """`perfkit export grafana -o FILE` writes the dashboard JSON with the title asked for."""
    out = tmp_path / "dash.json"
    assert main(["export", "grafana", "-o", str(out), "--title", "shop"]) == 0
    assert json.loads(out.read_text())["title"] == "shop"


def test_bad_rule_or_budget_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """A rule on the report-only score, an unknown budget, a bad duration: exit 2 and one line naming it."""
    for argv, needle in (
        (["export", "alerts", "--rule", "score < 50"], "'score'"),
        (["export", "alerts", "--budget", "latency=3"], "--budget"),
        (["export", "alerts", "--window", "soon"], "--window"),
        (["export", "alerts", "--rule", "p95 >> 1"], "is not a rule"),
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and needle in err, err
