"""The monitoring endpoints (health, report, jobs API the dashboard reads, errors) show no credential."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import AUTH, EnvFactory

SECRET = "hunter2"


async def test_health_report_jobs_api_and_dashboard_data(
    make_env: EnvFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """Health (a failing check's message), the report (a statement's text), the jobs API (a job's
    error, what the dashboard lists), error answers and the slow-query log carry no credential."""
    from perfkit.monitor.health import Check

    async def failing() -> Any:
        raise RuntimeError("cannot reach postgresql://app:hunter2@db/x?password=hunter2")

    env = await make_env(checks=[Check("upstream", failing)])

    @env.jobs.task(retries=0)
    async def leaky(ctx: Any) -> None:  # retries=0: dead at once
        raise RuntimeError("upload to https://h/x?access_token=hunter2 failed")

    await leaky.enqueue()
    await env.jobs.worker(burst=True, concurrency=1).run()
    with env.engine.connect() as conn:  # slow_query is ~0 in make_env: every statement is a finding
        conn.exec_driver_sql("SELECT 'redis://:hunter2@cache:6379/0?password=hunter2' AS dsn")
    assert SECRET not in caplog.text  # the slow-query WARNING
    answers = {
        path: await env.client.get(path, headers=AUTH)
        for path in ("/perf/health/ready", "/perf/report", "/perf/api/jobs")
    }
    answers["error"] = await env.client.get("/perf/api/jobs?status=redis://:hunter2@h/0", headers=AUTH)
    assert answers["error"].status_code == 400
    assert "password=***" in answers["/perf/health/ready"].text
    assert "password=***" in answers["/perf/report"].text
    assert "access_token=***" in answers["/perf/api/jobs"].text
    for path, response in answers.items():
        assert SECRET not in response.text, path


async def test_webhook_userinfo_never_goes_into_the_host_header() -> None:
    """A webhook URL with user:password@ is posted with `Host: 127.0.0.1:port`, not the credentials."""
    import asyncio

    from perfkit.monitor.alerts import post_json

    heads: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        assert await post_json(f"http://u:hunter2@127.0.0.1:{port}/hook", {"status": "firing"}) == 204
    finally:
        server.close()
        await server.wait_closed()
    assert f"Host: 127.0.0.1:{port}\r\n".encode() in heads[0]
    assert SECRET.encode() not in heads[0]
