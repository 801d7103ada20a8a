"""Metrics, health and reports of `perfkit serve`, and the embedded default (`perfkit serve` alone)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from perfkit.serve import ServeClient
from tests.serve._server import ROOT, serve_process

TOKEN = "solo-token-0123456789abcdef"


async def test_metrics_count_requests_cache_and_queues(app: ServeClient, admin: ServeClient) -> None:
    """GET /v1/metrics: requests per operation, the namespace's cache statistics, the queue depths."""
    await app.set("m", 1)
    assert await app.get("m") == 1
    assert await app.get("absent") is None
    metrics = await admin.metrics()
    assert metrics["requests"]["cacheGet"]["requests"] >= 2
    assert metrics["requests"]["cacheGet"]["client_errors"] >= 1  # the 404 of the miss
    stats = metrics["cache"][app.namespace]
    assert stats["hits"] >= 1 and stats["misses"] >= 1
    assert isinstance(metrics["jobs"]["depth"], dict) and "error" not in metrics["jobs"]["depth"]
    assert metrics["uptime_s"] > 0


async def test_prometheus_text_and_the_report(admin: ServeClient) -> None:
    """?format=prometheus is the Monitor's exposition with the service's request series; the report
    covers the service's routes."""
    text = (await admin.http.get("/v1/metrics", params={"format": "prometheus"})).text
    assert "http_request_duration_seconds" in text and 'route="/v1/cache/{namespace}/keys/{key...}"' in text
    report = await admin.report(window=300)
    assert report["window_s"] == 300 and "kpis" in report
    assert (await admin.http.get("/v1/reports", params={"window": "-1"})).json()["errors"][0][
        "field"
    ] == "window"


async def test_health_checks_the_cache_and_the_queue(reader: ServeClient) -> None:
    """GET /v1/health (read scope) runs the cache and job queue checks."""
    health = await reader.health()
    assert health["ok"] is True
    assert {"cache", "jobs"} <= set(health["checks"]["checks"])


async def test_perfkit_serve_alone_runs_on_embedded_sqlite(tmp_path: Path) -> None:
    """No --cache/--jobs: SQLite files in the working directory; sensitive values need a key (422);
    --open-health opens the health check and nothing else."""
    env = {"PERFKIT_SERVE_TOKENS": f"solo {TOKEN} write"}
    with serve_process(tmp_path, "--open-health", env=env) as url:
        async with ServeClient(url, TOKEN) as client:
            await client.set("k", {"v": 1})
            assert await client.get("k") == {"v": 1}
            refused = await client.http.put("/v1/cache/default/keys/s", json={"value": 1, "sensitive": True})
            assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "sensitive"
        async with httpx.AsyncClient(base_url=url) as anonymous:
            assert (await anonymous.get("/v1/health")).status_code == 200
            assert (await anonymous.get("/v1/cache/default/keys/k")).status_code == 401
    assert (tmp_path / "perfkit-serve-cache.db").exists() and (tmp_path / "perfkit-serve-jobs.db").exists()


async def test_a_cache_that_is_down_answers_503_and_the_health_check_fails(tmp_path: Path) -> None:
    """Redis unreachable: cache calls answer a 503 problem (never a hang or a 500), health says 503."""
    from tests.conftest import free_port

    env = {"PERFKIT_SERVE_TOKENS": f"solo {TOKEN} write"}
    dead = f"redis://127.0.0.1:{free_port()}/0"
    with serve_process(tmp_path, "--cache", dead, env=env) as url:
        async with ServeClient(url, TOKEN) as client:
            for response in (
                await client.http.get("/v1/cache/default/keys/k"),
                await client.http.put("/v1/cache/default/keys/k", json={"value": 1}),
            ):
                assert response.status_code == 503
                assert response.json()["type"].endswith("/backend-unavailable")
            health = await client.http.get("/v1/health")
            assert health.status_code == 503 and health.json()["ok"] is False


def test_bad_options_exit_2_with_one_line(tmp_path: Path) -> None:
    """A malformed --job-type or --loader: exit code 2 and one line naming the option."""
    for args, words in [
        (["--job-type", "video"], "job_type"),
        (["--job-type", "video=ftp://x"], "job_type"),
        (["--loader", "slides=nomodule"], "loader"),
        (["--max-body", "lots"], "max_body"),
        (["--default-ttl", "-1"], "default_ttl"),
    ]:
        done = subprocess.run(
            [sys.executable, "-m", "perfkit", "serve", *args], cwd=tmp_path, capture_output=True, text=True,
            env={"PYTHONPATH": str(ROOT / "src"), "PERFKIT_SERVE_TOKENS": f"solo {TOKEN} write", "PATH": ""},
            timeout=60,
        )  # fmt: skip
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr.count("\n") == 1 and words in done.stderr, done.stderr
