"""Jobs over HTTP against a real `perfkit serve`: the three kinds of handler (Python tasks, HTTP
callbacks, remote workers under leases), create/list/get/cancel, and lost leases."""

from __future__ import annotations

from typing import Any

import pytest

from perfkit.serve import ServeClient, ServeError
from tests.conftest import eventually
from tests.serve._server import Receiver
from tests.serve.conftest import LEASE


async def finished(app: ServeClient, job_id: str, timeout: float = 10.0) -> dict[str, Any]:
    """The job once it is in a terminal state (the service's worker runs it in another process)."""
    seen: dict[str, Any] = {}

    async def done() -> bool:
        seen.update(await app.job(job_id))
        return seen["status"] in ("succeeded", "failed", "dead", "cancelled")

    await eventually(done, timeout=timeout, what=f"job {job_id} finished", max_interval=0.05)
    return seen


async def test_job_types_list_the_three_handlers(app: ServeClient) -> None:
    """GET /v1/job-types shows each configured type with its handler, queue and retries."""
    types = {t["name"]: t for t in (await app.http.get("/v1/job-types")).json()["types"]}
    assert types["resize"]["handler"] == "python" and types["resize"]["queue"] == "images"
    assert types["email"]["handler"] == "callback" and types["email"]["retries"] == 1
    assert types["video"]["handler"] == "remote" and types["video"]["queue"] == "video"


async def test_a_python_task_runs_in_the_service(app: ServeClient) -> None:
    """A type from `--tasks` runs in the service's own worker; its result is the task's return value."""
    job = await app.enqueue("resize", 640, 480, priority="high")
    assert job["status"] == "queued" and job["priority"] == "high"
    done = await finished(app, job["id"])
    assert done["status"] == "succeeded"
    assert done["result"] == {"width": 320, "height": 240, "attempt": 1}


async def test_an_http_callback_type_posts_the_job_and_records_the_answer(
    app: ServeClient, receiver: Receiver
) -> None:
    """A callback type: the service POSTs the job to the app's URL and stores the answer's result."""
    job = await app.enqueue("email", "a@example.com", kwargs={"template": "welcome"})
    done = await finished(app, job["id"])
    assert done["status"] == "succeeded"
    assert done["result"] == {"sent_to": "a@example.com", "attempt": 1}
    posted = [b for b in receiver.wait_for("/jobs/email") if b["id"] == job["id"]]
    assert posted == [{"id": job["id"], "type": "email", "args": ["a@example.com"],
                       "kwargs": {"template": "welcome"}, "attempt": 1}]  # fmt: skip


async def test_a_failing_callback_is_retried_then_failed(app: ServeClient) -> None:
    """A non-2xx answer fails the attempt; after its retries the job is failed with the answer in error."""
    job = await app.enqueue("badmail", "b@example.com")
    done = await finished(app, job["id"])
    assert done["status"] == "failed"
    assert done["attempts"] == 2
    assert "answered 500" in done["error"]


async def test_create_list_get_cancel(app: ServeClient) -> None:
    """A delayed job is scheduled, listed, fetched by id, and cancelled before it runs."""
    job = await app.enqueue("video", "intro.mp4", delay=3600, key=f"render-{app.namespace}")
    assert job["status"] == "scheduled"
    again = await app.enqueue("video", "intro.mp4", delay=3600, key=f"render-{app.namespace}")
    assert again["id"] == job["id"]  # the idempotency key holds
    page = await app.jobs(queue="video", limit=1000)
    assert job["id"] in [j["id"] for j in page["jobs"]]
    assert (await app.job(job["id"]))["args"] == ["intro.mp4"]
    cancelled = await app.cancel(job["id"])
    assert cancelled["status"] == "cancelled"
    with pytest.raises(ServeError) as missing:
        await app.job("video:0000000000000000000000")
    assert missing.value.status == 404


async def test_unknown_type_and_bad_fields_are_named(app: ServeClient) -> None:
    """An unknown type, a bad priority or a negative delay: 422 naming the field."""
    for body, field in [
        ({"type": "nope"}, "type"),
        ({"type": "video", "priority": "urgent"}, "priority"),
        ({"type": "video", "delay": -1}, "delay"),
        ({"type": "video", "args": "x"}, "args"),
    ]:
        response = await app.http.post("/v1/jobs", json=body)
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == field


async def _claim_one(app: ServeClient, job_id: str, lease: float | None = None) -> dict[str, Any]:
    """Claim until this test's job comes (the queue is shared: other tests' jobs are claimed and left)."""
    found: dict[str, Any] = {}

    async def claimed() -> bool:
        found.update(
            next((j for j in await app.claim(["video"], limit=100, lease=lease) if j["id"] == job_id), {})
        )
        return bool(found)

    await eventually(claimed, timeout=5, what=f"claim of {job_id}", max_interval=0.05)
    return found


async def test_a_remote_worker_claims_heartbeats_and_completes(app: ServeClient) -> None:
    """claim -> heartbeat (progress) -> complete: the job succeeds with the worker's result."""
    job = await app.enqueue("video", "remote.mp4", priority="critical")
    claimed = await _claim_one(app, job["id"])
    assert claimed["id"] == job["id"] and claimed["args"] == ["remote.mp4"] and claimed["attempt"] == 1
    beat = await app.heartbeat(claimed["id"], claimed["token"], progress=0.5, message="half")
    assert beat["stop"] is False
    seen = await app.job(job["id"])
    assert seen["status"] == "running" and seen["progress"] == 0.5
    assert (await app.complete(claimed["id"], claimed["token"], {"url": "s3://x"}))["status"] == "succeeded"
    done = await app.job(job["id"])
    assert done["status"] == "succeeded" and done["result"] == {"url": "s3://x"}


async def test_an_abandoned_claim_is_delivered_again_and_the_old_lease_is_refused(app: ServeClient) -> None:
    """A worker that claims and dies: after the lease lapses the job is claimed again (attempt 2), and
    the dead worker's late outcome is refused with 409 naming the token."""
    job = await app.enqueue("video", "crash.mp4", priority="critical")
    first = await _claim_one(app, job["id"], lease=1)
    assert first["id"] == job["id"]
    second: dict[str, Any] = {}

    async def redelivered() -> bool:
        for claimed in await app.claim(["video"], limit=10):
            if claimed["id"] == job["id"]:
                second.update(claimed)
        return bool(second)

    await eventually(redelivered, timeout=LEASE * 4, what="re-delivery", max_interval=0.2)
    assert second["attempt"] == 2 and second["token"] != first["token"]
    with pytest.raises(ServeError) as stale:
        await app.complete(job["id"], first["token"], "late")
    assert stale.value.status == 409 and stale.value.field == "token"
    await app.complete(job["id"], second["token"], "on time")
    assert (await app.job(job["id"]))["result"] == "on time"


async def test_a_remote_failure_is_retried_then_failed(app: ServeClient) -> None:
    """fail with retries left queues the job again; the last attempt's failure is final."""
    job = await app.enqueue("video", "bad.mp4", priority="critical")
    outcomes = []
    for _ in range(3):  # retries=2: three attempts
        claimed: dict[str, Any] = {}

        async def got(claimed: dict[str, Any] = claimed) -> bool:
            for c in await app.claim(["video"], limit=10):
                if c["id"] == job["id"]:
                    claimed.update(c)
            return bool(claimed)

        await eventually(got, timeout=5, what="the retry", max_interval=0.05)
        outcomes.append((await app.fail(job["id"], claimed["token"], "codec missing"))["status"])
    assert outcomes == ["queued", "queued", "failed"]
    done = await app.job(job["id"])
    assert done["status"] == "failed" and done["error"] == "codec missing" and done["attempts"] == 3


async def test_cancelling_a_claimed_job_stops_its_remote_worker(app: ServeClient) -> None:
    """DELETE on a job a remote worker holds: its next heartbeat answers stop, and the job is cancelled."""
    job = await app.enqueue("video", "cancel-me.mp4", priority="critical")
    claimed = await _claim_one(app, job["id"])
    assert (await app.cancel(job["id"]))["cancel_requested"] is True
    assert (await app.heartbeat(job["id"], claimed["token"]))["stop"] is True
    assert (await app.job(job["id"]))["status"] == "cancelled"
    with pytest.raises(ServeError) as late:
        await app.complete(job["id"], claimed["token"], "too late")
    assert late.value.status == 409


async def test_claims_take_only_remote_types(app: ServeClient) -> None:
    """A claim for a type handled in-process is refused naming the entry."""
    response = await app.http.post("/v1/workers/claim", json={"types": ["video", "resize"]})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "types[1]"
