"""`perfkit demo` end to end: real child processes (uvicorn app, job worker), real load, real stores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from perfkit.cli import main
from perfkit.demo.settings import PG_SCHEMA

from ..conftest import POSTGRES_URL, REDIS_URL, require_postgres, require_redis

DEMO_REDIS_DB = 14  # the demo writes several key families; its own database keeps them apart


def run_demo(tmp_path: Path, *extra: str, timeout: float = 240) -> dict[str, Any]:
    out = tmp_path / "out.json"
    argv = ["demo", "--quick", "--no-serve", "--json", str(out), "--dir", str(tmp_path / "stores"), *extra]
    result = subprocess.run(
        [sys.executable, "-m", "perfkit", *argv], capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Before/after" in result.stdout
    doc: dict[str, Any] = json.loads(out.read_text())
    return doc


def assert_optimised_do_less(doc: dict[str, Any], *, p95: bool) -> None:
    names = [p["name"] for p in doc["pairs"]]
    assert names == ["stats", "tickets", "dashboard", "search", "export", "notify"]
    for pair in doc["pairs"]:
        naive, fast = pair["naive"], pair["fast"]
        assert naive["errors"] == fast["errors"] == 0, pair
        assert naive["requests"] > 0 and fast["requests"] > 0, pair
        if pair["name"] != "search":  # the same one query; only its plan differs
            assert fast["queries_per_request"] < naive["queries_per_request"], pair
        if p95:
            assert fast["p95_ms"] < naive["p95_ms"], pair
    stats = doc["pairs"][0]
    assert (stats["naive"]["queries_per_request"], stats["fast"]["queries_per_request"]) == (11, 1)
    assert doc["pairs"][2]["fast"]["cache_hit_ratio"] > 0.9  # the cached dashboard
    checks = doc["checks"]
    assert checks["write_visible_on_next_read"] is True
    assert checks["export_job"]["identical"] is True
    assert checks["notify_job"]["identical"] is True
    report = doc["report"]
    assert "Ticket.comments" in report["found_n_plus_one"]  # found by measurement, not told
    assert any("/naive/stats/" in route for route in report["found_many_queries"])
    assert report["score"] is not None


def test_quick_demo_on_the_embedded_default(tmp_path: Path) -> None:
    """At full volume on SQLite: every optimised variant runs fewer queries and has a lower p95, the
    checks pass, and the monitoring report finds the N+1 and the 11-query statistics by itself."""
    doc = run_demo(tmp_path)
    assert doc["stores"] == {"database": "sqlite", "cache": "sqlite", "jobs": "sqlite"}
    assert doc["volume"]["tickets"] == 200_000
    assert_optimised_do_less(doc, p95=True)


@pytest.fixture
def demo_redis_url() -> Any:
    require_redis()
    import redis

    parts = urlsplit(REDIS_URL)
    url = urlunsplit(parts._replace(path=f"/{DEMO_REDIS_DB}"))
    client = redis.Redis.from_url(url)
    try:
        yield url
    finally:
        for key in client.scan_iter(count=1000):  # this database is the demo test's alone
            client.delete(key)
        client.close()


@pytest.fixture
def demo_postgres_url() -> Any:
    require_postgres()
    import psycopg

    yield POSTGRES_URL
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE")


def test_quick_demo_on_redis_and_postgres(
    tmp_path: Path, demo_redis_url: str, demo_postgres_url: str
) -> None:
    """The multi-machine setup (data on PostgreSQL; cache, jobs and monitoring on Redis) gives the same
    data and the same query savings (small volume: only query counts are compared, not latency)."""
    doc = run_demo(tmp_path, "--redis", demo_redis_url, "--postgres", demo_postgres_url, "--scale", "0.01")
    assert doc["stores"] == {"database": "postgresql+psycopg", "cache": "redis", "jobs": "redis"}
    assert_optimised_do_less(doc, p95=False)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--redis", "http://127.0.0.1:6379"], "--redis"),
        (["--postgres", "mysql://x"], "--postgres"),
        (["--scale", "3"], "--scale"),
        (["--duration", "soon"], "--duration"),
    ],
)
def test_bad_options_are_refused_by_name(
    argv: list[str], needle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad option exits 2 with one line naming it, before anything starts."""
    assert main(["demo", "--no-serve", "--dir", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err
    assert needle in err
    assert "Traceback" not in err
    assert not (tmp_path / "demo.db").exists()


def test_demo_children_stop_with_the_demo(tmp_path: Path) -> None:
    """SIGTERM to a serving demo stops the app and the worker it started (by pid) and exits."""
    import signal

    stores = tmp_path / "stores"
    proc = subprocess.Popen(
        [sys.executable, "-m", "perfkit", "demo", "--quick", "--dir", str(stores), "--scale", "0.01",
         "--duration", "0.2s"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    pids: list[int] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # read until the demo says it is serving
            if "job worker (pid" in line:
                pids = [int(p.split(")")[0]) for p in line.split("pid ")[1:]]
            if line.startswith("Serving until Ctrl-C"):
                break
        assert len(pids) == 2
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 143
        # the demo waited for both before exiting, so they are reaped: gone from the process table
        assert [p for p in pids if Path(f"/proc/{p}").exists()] == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
