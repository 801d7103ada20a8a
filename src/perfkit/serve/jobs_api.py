"""The job endpoints: create / list / get / cancel, the configured types, and the remote workers'
claim / heartbeat / complete / fail under perfkit.jobs' leases.

A remote worker's claim is the backend's own claim (the lease and its token, the attempt number); its
heartbeats are lease renewals; its outcome is recorded with that token, so an outcome from a worker
whose lease lapsed is refused (409) and the job's new attempt stands. The service sweeps lapsed leases
of the remote queues with `perfkit.jobs.lease.LeaseKeeper`: a worker that dies (or abandons a claim)
has its job queued again within about a lease and delivered to the next claim.
"""

from __future__ import annotations

import time
from typing import Any

from perfkit.errors import PerfkitError
from perfkit.jobs import JobQueue
from perfkit.jobs.models import JobInfo, JobRecord, Outcome, Priority, Status, unpack_payload
from perfkit.serve import schemas as s
from perfkit.serve.http import Request, Response, json_response
from perfkit.serve.job_types import JobTypes
from perfkit.serve.problems import Problem, problem_from

_PRIORITY_NAMES = {p: p.name.lower() for p in Priority}  # an Enum's .name and .value are slow properties
_STATUS_NAMES: dict[Status, s.JobStatus] = {st: st.value for st in Status}


def job_view(info: JobInfo) -> s.Job:
    return s.Job(
        id=info.id, type=info.type, queue=info.queue, priority=_PRIORITY_NAMES[info.priority],  # type: ignore[arg-type]
        status=_STATUS_NAMES[info.status], args=list(info.args), kwargs=info.kwargs,
        progress=info.progress, progress_message=info.progress_message, result=info.result,
        error=info.error, attempts=info.attempts, max_attempts=info.max_attempts, key=info.key,
        queued_at=info.queued_at, run_at=info.run_at, started_at=info.started_at,
        completed_at=info.completed_at, cancel_requested=info.cancel_requested,
    )  # fmt: skip


class JobsService:
    def __init__(self, jobs: JobQueue, types: JobTypes) -> None:
        self.jobs = jobs
        self.types = types

    async def _call(self, coro: Any) -> Any:
        try:
            return await coro
        except PerfkitError as exc:
            raise problem_from(exc) from None

    async def create(self, request: Request) -> Response:
        body = request.json(s.JobCreate)
        if body.type not in self.types.kinds:
            raise Problem(
                422, "unknown-job-type",
                f"type: no job type {body.type!r}; configured: {sorted(self.types.kinds)}", field="type",
            )  # fmt: skip
        info = await self._call(
            self.jobs.enqueue(
                self.types.task(body.type), args=body.args, kwargs=body.kwargs, delay=body.delay,
                priority=body.priority, key=body.key,
            )
        )  # fmt: skip
        return json_response(job_view(info), 201, [(b"location", f"/v1/jobs/{info.id}".encode())])

    async def list_jobs(self, request: Request) -> Response:
        limit_text = request.arg("limit", "50") or "50"
        if not limit_text.isdigit():
            raise Problem(422, "validation", f"limit: {limit_text!r} is not a number", field="limit")
        page, cursor = await self._call(
            self.jobs.list(
                status=request.arg("status"), queue=request.arg("queue"), limit=int(limit_text),
                cursor=request.arg("cursor"),
            )
        )  # fmt: skip
        return json_response(s.JobPage([job_view(i) for i in page], cursor))

    async def _info(self, job_id: str) -> JobInfo:
        info: JobInfo | None = await self._call(self.jobs.get(job_id))
        if info is None:
            raise Problem(404, "unknown-job", f"no job {job_id!r}")
        return info

    async def get(self, request: Request) -> Response:
        return json_response(job_view(await self._info(request.params["id"])))

    async def cancel(self, request: Request) -> Response:
        job_id = request.params["id"]
        info = await self._call(self.jobs.cancel(job_id))
        if info is None:
            raise Problem(404, "unknown-job", f"no job {job_id!r}")
        return json_response(job_view(info))

    async def list_types(self, request: Request) -> Response:
        out = []
        for name, kind in sorted(self.types.kinds.items()):
            o = self.types.task(name).options
            out.append(s.JobType(name, kind, o.queue, o.priority.name.lower(), o.retries, o.timeout))  # type: ignore[arg-type]
        return json_response(s.JobTypes(out))

    # -- remote workers -------------------------------------------------------------------------------
    async def claim(self, request: Request) -> Response:
        body = request.json(s.Claim)
        queues = []
        for index, name in enumerate(body.types):
            if self.types.kinds.get(name) != "remote":
                raise Problem(
                    422, "not-a-remote-type", f"types[{index}]: {name!r} is not a remote job type",
                    field=f"types[{index}]",
                )  # fmt: skip
            queues.append(self.types.task(name).options.queue)
        lease = body.lease or self.jobs.lease
        now = time.time()
        records: list[JobRecord] = await self._call(self.jobs.backend.claim(queues, body.limit, lease, now))
        claimed = []
        for r in records:
            try:  # [args, kwargs], or [args, kwargs, headers]: the trace context of the queuing request
                args, kwargs, r.headers = unpack_payload(self.jobs.serializer.loads(r.payload))
            except Exception as exc:
                # an unreadable payload: dead-lettered as a Python worker does it, `dead` and no
                # `started` (it never ran, so no attempt span is opened to be left open)
                error = f"payload of task {r.task!r} cannot be decoded: {exc}"
                dead = Outcome(r.id, r.token, Status.DEAD, error=error, completed_at=now)
                await self._call(self.jobs.backend.finish([dead]))
                self.jobs.hooks.emit("dead", r, error=error)
                continue
            self.jobs.hooks.emit("started", r, wait=max(0.0, now - max(r.run_at, r.queued_at)))
            claimed.append(s.ClaimedJob(
                r.id, r.task, list(args), kwargs, r.attempts, r.max_attempts, r.token, now + lease, r.timeout,
                r.headers,
            ))  # fmt: skip
        return json_response(s.Claimed(claimed))

    async def _held(self, job_id: str, token: int) -> JobRecord:
        """The job's record, if `token` still holds its lease; else 409 (or 404)."""
        record: JobRecord | None = await self._call(self.jobs.backend.get(job_id))
        if record is None:
            raise Problem(404, "unknown-job", f"no job {job_id!r}")
        if record.status != Status.RUNNING or record.token != token:
            raise Problem(
                409, "lease-lost",
                f"token: lease {token} of job {job_id!r} is no longer held (the job is {record.status},"
                f" attempt {record.token}); drop this attempt", field="token",
            )  # fmt: skip
        return record

    async def heartbeat(self, request: Request) -> Response:
        job_id, body = request.params["id"], request.json(s.Heartbeat)
        await self._held(job_id, body.token)
        now, lease = time.time(), body.lease or self.jobs.lease
        stop = await self._call(self.jobs.backend.renew([(job_id, body.token)], lease, now))
        if job_id in stop:
            # cancellation requested (DELETE /v1/jobs/{id}): recorded now, as a Python worker's runner
            # does; the remote worker drops the job on `stop`
            record = await self._held(job_id, body.token)
            if record.cancel_requested:
                cancelled = Outcome(job_id, body.token, Status.CANCELLED, error="cancelled", completed_at=now)
                await self._call(self.jobs.backend.finish([cancelled]))
                self.jobs.hooks.emit("cancelled", record, duration=now - (record.started_at or now))
            return json_response(s.HeartbeatResult(True, now))
        if body.progress is not None:
            await self._call(self.jobs.backend.progress(job_id, body.progress, body.message))
        return json_response(s.HeartbeatResult(False, now + lease))

    async def complete(self, request: Request) -> Response:
        job_id, body = request.params["id"], request.json(s.Complete)
        record = await self._held(job_id, body.token)
        try:
            result = self.jobs.serializer.dumps(body.result)
        except (TypeError, ValueError, OverflowError) as exc:
            raise Problem(422, "serialization", f"result: cannot be stored: {exc}", field="result") from None
        outcome = Outcome(job_id, body.token, Status.SUCCEEDED, result=result, completed_at=time.time())
        await self._call(self.jobs.backend.finish([outcome]))
        self.jobs.hooks.emit("succeeded", record, duration=time.time() - (record.started_at or time.time()))
        return json_response(s.Reported("succeeded"))

    async def fail(self, request: Request) -> Response:
        job_id, body = request.params["id"], request.json(s.Fail)
        record = await self._held(job_id, body.token)
        now = time.time()
        emit = self.jobs.hooks.emit
        emit("failed", record, duration=now - (record.started_at or now), error=body.error)
        task = self.jobs.registry.get(record.task)
        if body.retry and task is not None and record.attempts < record.max_attempts:
            emit("retried", record, error=body.error)
            run_at = now + task.options.backoff.delay(record.attempts)
            outcome = Outcome(job_id, body.token, Status.QUEUED, error=body.error, run_at=run_at)
            status = "scheduled" if run_at > now else "queued"
        else:
            emit("dead", record, error=body.error)
            outcome = Outcome(job_id, body.token, Status.FAILED, error=body.error, completed_at=now)
            status = "failed"
        await self._call(self.jobs.backend.finish([outcome]))
        return json_response(s.Reported(status))  # type: ignore[arg-type]
