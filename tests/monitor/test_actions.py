"""Dashboard actions through the API: cancel, retry, clear cache, mark a deploy; all need the token."""

from __future__ import annotations

from typing import Any

from .conftest import AUTH, Env


async def test_cancel_then_retry_a_job(env: Env) -> None:
    """A queued job is cancelled, then queued again by retry; unknown ids give 404, bad verbs 404."""

    @env.jobs.task(queue="reports")
    async def build(ctx: Any, n: int) -> int:
        return n

    job = await build.enqueue(1)
    path = f"/perf/api/jobs/{job.id}"
    assert (await env.client.post(f"{path}/cancel")).status_code == 401
    cancelled = await env.client.post(f"{path}/cancel", headers=AUTH)
    assert cancelled.json()["status"] == "cancelled"
    retried = await env.client.post(f"{path}/retry", headers=AUTH)
    assert retried.json() == {"id": job.id, "retried": True}
    again = await env.jobs.get(job.id)
    assert again is not None and again.status == "queued"
    assert (await env.client.post(f"{path}/retry", headers=AUTH)).status_code == 409  # not failed/cancelled
    assert (
        await env.client.post("/perf/api/jobs/reports:00000000000000aaaaaaaaaa/cancel", headers=AUTH)
    ).status_code == 404
    assert (await env.client.post(f"{path}/explode", headers=AUTH)).status_code == 404
    listed = (await env.client.get("/perf/api/jobs?status=queued", headers=AUTH)).json()["items"]
    assert [j["id"] for j in listed] == [job.id]


async def test_clear_cache_and_mark_deploy(env: Env) -> None:
    """Clear cache empties the instrumented namespace; a marked deploy becomes the regression baseline."""
    await env.cache.set("k", 1)
    response = await env.client.post("/perf/api/cache/clear", headers=AUTH)
    assert response.status_code == 200
    assert await env.cache.get("k") is None
    mark = (await env.client.post("/perf/api/deploy?version=v42", headers=AUTH)).json()
    assert mark["version"] == "v42"
    regressions = (await env.client.get("/perf/api/regressions", headers=AUTH)).json()
    assert regressions == {"baseline": "before deploy v42", "regressions": []}
