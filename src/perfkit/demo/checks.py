"""What the demo verifies through the app's own HTTP API after measuring: writes are visible on the next
read under the cache, the jobs produce what the blocking variants produce, and the monitoring report
found the slow patterns by itself."""

from __future__ import annotations

import time
from typing import Any

import httpx

from perfkit.errors import PerfkitError

JOB_DEADLINE = 90.0


def _ok(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        request = response.request
        raise PerfkitError(
            f"{request.method} {request.url.path}: {response.status_code} {response.text[:200]}"
        )
    return (
        response.json()
        if response.headers.get("content-type", "").startswith("application/json")
        else response.text
    )


def write_visible(client: httpx.Client, org: int) -> bool:
    """Change a ticket on the cached dashboard, read it again, then put the ticket back."""
    first = _ok(client.get(f"/fast/dashboard/{org}"))
    ticket = first["recent"][0]
    new = "cancelled" if ticket["status"] != "cancelled" else "open"
    _ok(client.post(f"/tickets/{ticket['id']}/status/{new}"))
    seen = _ok(client.get(f"/fast/dashboard/{org}"))["recent"][0]["status"]
    _ok(client.post(f"/tickets/{ticket['id']}/status/{ticket['status']}"))
    restored = _ok(client.get(f"/fast/dashboard/{org}"))["recent"][0]["status"]
    return bool(seen == new and restored == ticket["status"])


def wait_for_job(client: httpx.Client, job: dict[str, Any]) -> tuple[dict[str, Any], list[float]]:
    """Follow the job's status URL until it finishes (the client side of a 202): (job, progress seen)."""
    deadline = time.monotonic() + JOB_DEADLINE
    seen: list[float] = []
    while time.monotonic() < deadline:
        job = _ok(client.get(job["status_url"]))
        if not seen or seen[-1] != job["progress"]:
            seen.append(job["progress"])
        if job["status"] in ("succeeded", "failed", "dead", "cancelled"):
            return job, seen
        time.sleep(0.05)
    raise PerfkitError(f"job {job['id']} did not finish within {JOB_DEADLINE:g}s (is the worker running?)")


def _job_seconds(job: dict[str, Any]) -> float | None:
    """Enqueue to done: what a user waits for the result when the work runs in the worker."""
    if job.get("completed_at") is None or job.get("queued_at") is None:
        return None
    return round(float(job["completed_at"]) - float(job["queued_at"]), 3)


def export_matches(client: httpx.Client, org: int) -> dict[str, Any]:
    blocking = _ok(client.get(f"/naive/export/{org}"))
    job, progress = wait_for_job(client, _ok(client.post(f"/fast/export/{org}")))
    body = _ok(client.get(f"{job['status_url']}/export.csv")) if job["status"] == "succeeded" else None
    return {
        "status": job["status"],
        "identical": body == blocking,
        "rows": job["result"]["rows"] if job["result"] else None,
        "progress_seen": progress,
        "job_seconds": _job_seconds(job),
    }


def notify_matches(client: httpx.Client, org: int) -> dict[str, Any]:
    message = f"demo check {time.time_ns()}"
    inline = _ok(client.post(f"/naive/notify/{org}", params={"message": message}))
    job, progress = wait_for_job(client, _ok(client.post(f"/fast/notify/{org}", params={"message": message})))
    return {
        "status": job["status"],
        "identical": job["result"] == inline,
        "sent": inline["sent"],
        "progress_seen": progress,
        "job_seconds": _job_seconds(job),
    }


def run_all(client: httpx.Client, org: int) -> dict[str, Any]:
    return {
        "write_visible_on_next_read": write_visible(client, org),
        "export_job": export_matches(client, org),
        "notify_job": notify_matches(client, org),
    }


def all_passed(checks: dict[str, Any]) -> bool:
    return bool(
        checks["write_visible_on_next_read"]
        and checks["export_job"]["identical"]
        and checks["notify_job"]["identical"]
    )


def monitoring_report(client: httpx.Client, seconds: float) -> dict[str, Any]:
    """The score and what the report recommends, from the app's `/perf/report`, over this run only."""
    doc = _ok(client.get("/perf/report", params={"window": f"{max(60, int(seconds) + 5)}s"}))
    recs = doc.get("recommendations", [])
    n_plus_one = sorted({f.get("relationship", "?") for f in doc["findings"]["n_plus_one"]})
    heavy = [r["evidence"]["route"] for r in recs if r["kind"] == "queries"]
    return {
        "score": doc["score"],
        "budgets_failed": [c["kpi"] for c in doc.get("budgets", []) if c.get("ok") is False],
        "recommendations": [{k: r[k] for k in ("severity", "message", "fix", "impact")} for r in recs[:5]],
        "found_n_plus_one": n_plus_one,
        "found_many_queries": heavy,
        "index_suggestions": [s.get("sql") for s in doc["findings"]["index_suggestions"]][:3],
    }
