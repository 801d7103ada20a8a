"""`perfkit doctor` against real served apps: a configured one passes, a bare one fails the right checks."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from sqlalchemy import create_engine

from perfkit import Cache, JobQueue
from perfkit.cli import main
from perfkit.db import uninstrument_engine
from perfkit.doctor import SCHEMA, Checklist, diagnose
from tests.conftest import POSTGRES_URL, REDIS_URL, require_postgres, require_redis
from tests.monitor.conftest import serve

from . import apps


def statuses(checklist: Checklist) -> dict[str, str]:
    return {r.id: r.status for r in checklist.results}


@pytest.fixture
async def good_url(tmp_path: Path) -> AsyncIterator[str]:
    """The configured app (PostgreSQL engine, Redis cache, SQLite jobs) served by uvicorn."""
    require_postgres()
    require_redis()
    engine = create_engine(POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://"), pool_size=5)
    cache = Cache(REDIS_URL, namespace=f"doctor-{os.urandom(4).hex()}")
    jobs = JobQueue(f"sqlite:///{tmp_path}/jobs.db")
    app = apps.good(engine, cache, jobs, f"sqlite:///{tmp_path}/monitor.db")
    try:
        async with serve(app) as url:
            async with httpx.AsyncClient(base_url=url) as client:
                for _ in range(9):  # traffic for the report: a cache that hits
                    assert (await client.get("/cached")).status_code == 200
            yield url
    finally:
        await cache.clear()
        await cache.close()
        await jobs.close()
        uninstrument_engine(engine)
        engine.dispose()


async def test_a_configured_app_passes_every_check_that_applies(good_url: str) -> None:
    """Compression, ETag, static caching, Server-Timing, health, protected metrics, rate limits,
    keep-alive, pool, Redis and PostgreSQL latency, budgets: all pass; only TLS/HSTS are skipped."""
    checklist = await diagnose(good_url, token=apps.TOKEN, paths=["/", "/cached"])
    got = statuses(checklist)
    assert {k for k, v in got.items() if v != "pass"} == {"tls", "hsts"}, [
        r for r in checklist.results if r.status != "pass"
    ]
    assert got["tls"] == got["hsts"] == "skip"
    assert checklist.summary == f"{len(got) - 2}/{len(got) - 2} checks passed"
    assert checklist.exit_code() == 0
    by_id = {r.id: r for r in checklist.results}
    assert "postgresql" in by_id["database_latency"].detail
    assert "redis" in by_id["redis_latency"].detail
    assert "size 5" in by_id["db_pool"].detail


async def test_without_the_token_the_monitor_checks_say_they_need_it(good_url: str) -> None:
    """No token: metrics still pass as protected, and the report-based checks skip naming the token."""
    checklist = await diagnose(good_url)
    by_id = {r.id: r for r in checklist.results}
    assert by_id["metrics_protected"].status == "pass"
    for key in ("health_ready", "slow_routes", "cache_hit_ratio", "db_pool"):
        assert by_id[key].status == "skip" and "token" in by_id[key].detail, by_id[key]


def test_a_bare_app_fails_the_right_checks_with_fixes(capsys: pytest.CaptureFixture[str]) -> None:
    """`--app` on an app without perfkit: no compression, ETag, static caching, health; exit code 1."""
    code = main(["doctor", "--app", "tests.doctor.apps:bare", "--json"])
    data = json.loads(capsys.readouterr().out)
    jsonschema.validate(data, SCHEMA)
    got = {c["id"]: c for c in data["checks"]}
    assert code == 1
    for key in ("compression", "static_cache", "health_live", "health_ready"):
        assert got[key]["status"] == "fail" and got[key]["fix"], got[key]
    for key in ("etag", "server_timing", "rate_limit_headers"):
        assert got[key]["status"] == "warn" and got[key]["fix"], got[key]
    assert got["keep_alive"]["status"] == "pass"  # uvicorn keeps the connection
    assert data["passed"] < data["total"]
    assert data["summary"] == f"{data['passed']}/{data['total']} checks passed"


def test_an_open_monitor_fails_metrics_protected(capsys: pytest.CaptureFixture[str]) -> None:
    """A monitor opened to anyone serves /metrics without a token: that check fails, the text says so."""
    code = main(["doctor", "--app", "tests.doctor.apps:open_monitor"])
    out = capsys.readouterr().out
    assert code == 1
    line = next(line for line in out.splitlines() if "Metrics protected" in line)
    assert line.strip().startswith("[FAIL]") and "to anyone" in line
    assert "fix: set PERFKIT_MONITOR_TOKEN" in out
    assert out.strip().splitlines()[-1].endswith("failed")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["doctor"], "give a URL or --app"),
        (["doctor", "ftp://x"], "is not an http:// or https:// URL"),
        (["doctor", "--app", "nocolon"], "is not MODULE:ATTRIBUTE"),
        (["doctor", "--app", "tests.doctor.apps:missing"], "has no attribute"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A missing target, a bad URL or a bad --app: exit 2 and one line naming the problem."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_the_json_schema_rejects_what_it_should() -> None:
    """The documented schema is strict: an unknown status or a missing field does not validate."""
    good: dict[str, Any] = Checklist("http://x").as_json()
    jsonschema.validate(good, SCHEMA)
    bad = {**good, "checks": [{"id": "x", "title": "t", "status": "maybe", "detail": "", "fix": ""}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, SCHEMA)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({k: v for k, v in good.items() if k != "counts"}, SCHEMA)
