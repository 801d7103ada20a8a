"""`JobQueue`: register tasks, enqueue them, and look jobs up, whatever backend the URL picked."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from perfkit.config import parse_duration
from perfkit.errors import (
    ConfigurationError,
    InvalidDurationError,
    PerfkitError,
    SerializationError,
    ValueTooLargeError,
)
from perfkit.jobs.backends import JobBackend, registry
from perfkit.jobs.config import JobsConfig, check_queue
from perfkit.jobs.cron import Cron
from perfkit.jobs.hooks import Hook, Hooks
from perfkit.jobs.models import (
    JobInfo,
    JobRecord,
    Priority,
    Status,
    new_job_id,
    pack_payload,
    priority_of,
    queue_of,
    unpack_payload,
)
from perfkit.jobs.registry import Periodic, TaskRegistry
from perfkit.jobs.retry import BackoffSpec
from perfkit.jobs.task import PreparedJob, Task, TaskOptions
from perfkit.serialization import Serializer

if TYPE_CHECKING:
    from perfkit.jobs.sync import SyncJobQueue
    from perfkit.jobs.worker import Worker


class JobQueue:
    """A job queue on `url` (`sqlite:///jobs.db`, `postgresql://...`, `redis://...`).

    Nothing connects until the first call that needs storage. Settings not given here come from
    `PERFKIT_JOBS_URL`, `PERFKIT_JOBS_MAX_PAYLOAD`, `PERFKIT_JOBS_RETENTION`, `PERFKIT_JOBS_LEASE`;
    they are resolved once into `self.config` (a `JobsConfig`), which `config=` accepts instead.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        serializer: str | Serializer = "msgpack",
        pickle_key: bytes | str | None = None,
        max_payload: int | str | None = None,
        retention: float | str | None = None,
        lease: float | str | None = None,
        default_queue: str = "default",
        config: JobsConfig | None = None,
        **backend_options: Any,
    ) -> None:
        if config is None:
            config = JobsConfig.resolve(
                url, serializer=serializer, pickle_key=pickle_key, max_payload=max_payload,
                retention=retention, lease=lease, default_queue=default_queue, **backend_options,
            )  # fmt: skip
        elif not isinstance(config, JobsConfig):
            raise ConfigurationError("config", f"{config!r} is not a JobsConfig")
        elif (
            (url, pickle_key, max_payload, retention, lease) != (None,) * 5
            or backend_options
            or (serializer != "msgpack" or default_queue != "default")
        ):
            raise ConfigurationError("config", "give config= or the settings it holds, not both")
        self.config = config
        self.serializer = config.make_serializer()
        self.registry = TaskRegistry()
        self.hooks = Hooks()
        self._backend: JobBackend | None = None
        self._sync: SyncJobQueue | None = None
        self._sync_lock = threading.Lock()

    @property
    def tasks(self) -> dict[str, Task]:
        """Registered tasks by name (`self.registry.tasks`)."""
        return self.registry.tasks

    @property
    def periodic_tasks(self) -> list[Periodic]:
        """The tasks registered with `periodic()` and their schedules (`self.registry.periodic`)."""
        return self.registry.periodic

    @property
    def url(self) -> str:
        return self.config.url

    @property
    def max_payload(self) -> int:
        return self.config.max_payload

    @property
    def retention(self) -> float:
        return self.config.retention

    @property
    def lease(self) -> float:
        return self.config.lease

    @property
    def default_queue(self) -> str:
        return self.config.default_queue

    def __repr__(self) -> str:
        from perfkit.backends import parse_url

        return f"JobQueue({parse_url(self.url, 'jobs_url').redacted()!r})"

    @property
    def backend(self) -> JobBackend:
        if self._backend is None:
            options = {"retention": self.config.retention, **self.config.backend_options}
            self._backend = registry.create(self.url, "jobs_url", **options)
        return self._backend

    # -- registration --------------------------------------------------------------------------------
    def task(
        self,
        func: Callable[..., Any] | None = None,
        *,
        name: str | None = None,
        queue: str | None = None,
        priority: Priority | str | int = Priority.MEDIUM,
        retries: int = 0,
        backoff: BackoffSpec = "exponential",
        timeout: float | str | None = None,
        cpu: bool = False,
    ) -> Any:
        """Register `func(ctx, ...)` as a task; usable as `@jobs.task` or `@jobs.task(queue=..., ...)`.

        `cpu=True`: a plain module-level `func(...)` (no ctx: it cannot cross a process) run in perfkit's
        warm process pool (`perfkit.cpu`), so CPU-heavy work never blocks the worker's event loop; on
        `timeout` its process is killed and replaced, and a crash fails this job only."""
        options = TaskOptions.check(
            queue or self.default_queue,
            priority=priority,
            retries=retries,
            backoff=backoff,
            timeout=timeout,
            cpu=cpu,
        )

        def register(f: Callable[..., Any]) -> Task:
            return self.registry.add(Task(self, f, name or f"{f.__module__}.{f.__qualname__}", options))

        return register if func is None else register(func)

    def periodic(self, cron: str, **task_options: Any) -> Callable[[Callable[..., Any]], Task]:
        """Register a task run on a cron schedule (UTC); each tick runs once across all workers."""
        parsed = Cron(cron)

        def register(f: Callable[..., Any]) -> Task:
            t: Task = self.task(**task_options)(f)
            self.registry.add_periodic(t, parsed)
            return t

        return register

    def on_event(self, hook: Hook) -> Hook:
        """Call `hook(JobEvent)` on every job event seen in this process (usable as a decorator)."""
        return self.hooks.add(hook)

    # -- producing -----------------------------------------------------------------------------------
    async def enqueue(
        self,
        task: Task | str,
        *,
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        delay: float | str | None = None,
        at: datetime | float | None = None,
        priority: Priority | str | int | None = None,
        key: str | None = None,
        queue: str | None = None,
    ) -> JobInfo:
        """Queue `task` (a Task or a registered name); see `Task.enqueue`.

        Enqueues issued concurrently (from many coroutines, say the requests of an ASGI app) while one
        is in flight share one round trip (autopipelining): each caller still gets its own job or error.
        """
        t = task if isinstance(task, Task) else self.registry.named(task)
        record = self._record(t, args, kwargs, delay, at, priority, key, queue)
        job_id, created = await self.backend.enqueue(record)
        return await self._enqueued(record, job_id, created, t, args, kwargs)

    async def enqueue_many(self, jobs: Iterable[PreparedJob]) -> list[JobInfo]:
        """Queue many jobs in one round trip (Redis: one script call per queue; SQL: one transaction).

        `jobs` are `task.prepare(*args, **options)` results, each with its own priority, delay or key;
        returns their JobInfos in order. A key already held (or repeated earlier in the batch) returns
        the job holding it, as `enqueue` does. Every job is checked before anything is stored: one bad
        job raises, naming its index, and none is queued.
        """
        items = list(jobs)
        records: list[JobRecord] = []
        for index, job in enumerate(items):
            if not isinstance(job, PreparedJob):
                raise ConfigurationError("jobs", f"item {index} is {job!r}, not a task.prepare(...) result")
            try:
                records.append(
                    self._record(
                        job.task, job.args, job.kwargs, job.delay, job.at, job.priority, job.key, None
                    )
                )
            except PerfkitError as exc:  # name the item in the message itself; keep the type callers catch
                exc.args = (f"enqueue_many item {index} (nothing was queued): {exc}",)
                raise
        if not records:
            return []
        results = await self.backend.enqueue_many(records)
        return [
            await self._enqueued(record, job_id, created, job.task, job.args, job.kwargs)
            for record, (job_id, created), job in zip(records, results, items, strict=True)
        ]

    def _record(
        self,
        t: Task,
        args: Sequence[Any],
        kwargs: dict[str, Any] | None,
        delay: float | str | None,
        at: datetime | float | None,
        priority: Priority | str | int | None,
        key: str | None,
        queue: str | None,
    ) -> JobRecord:
        now = time.time()
        run_at = now
        if delay is not None and at is not None:
            raise ConfigurationError("delay", "give delay= or at=, not both")
        if delay is not None:
            run_at = now + parse_duration("delay", delay)
        elif at is not None:
            if isinstance(at, datetime):
                if at.tzinfo is None:
                    raise ConfigurationError("at", f"{at!r} has no timezone; pass an aware datetime")
                run_at = at.timestamp()
            elif isinstance(at, int | float) and not isinstance(at, bool):
                run_at = float(at)
                if not math.isfinite(run_at):
                    raise InvalidDurationError("at", f"{at!r} is not a finite UNIX timestamp")
            else:
                raise ConfigurationError("at", f"{at!r} is not a datetime or a UNIX timestamp")
        if key is not None and (not isinstance(key, str) or not key or len(key) > 200):
            raise ConfigurationError("key", f"{key!r} is not a non-empty string of at most 200 characters")
        prio = t.options.priority if priority is None else Priority.parse(priority)
        q = t.options.queue if queue is None else check_queue(queue)
        headers = self.hooks.carried() if self.hooks.carriers else None
        payload = self._dump_payload(t.name, tuple(args), kwargs or {}, headers)
        return JobRecord(
            id=new_job_id(q), queue=q, task=t.name, payload=payload, priority=int(prio),
            max_attempts=t.options.retries + 1, timeout=t.options.timeout, key=key,
            run_at=run_at, queued_at=now, headers=headers,
        )  # fmt: skip

    async def _enqueued(
        self,
        record: JobRecord,
        job_id: str,
        created: bool,
        t: Task,
        args: Sequence[Any],
        kwargs: dict[str, Any] | None,
    ) -> JobInfo:
        if not created:
            existing = await self.get(job_id)
            if existing is not None:
                return existing
        self.hooks.emit("enqueued", record, attempt=0)
        return self._info(record, tuple(args), kwargs or {})

    def _dump_payload(
        self,
        task_name: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        headers: dict[str, str] | None = None,
    ) -> bytes:
        try:
            data = self.serializer.dumps(pack_payload(list(args), kwargs, headers))
        except (TypeError, ValueError, OverflowError) as exc:
            raise SerializationError(
                f"task {task_name!r}: arguments cannot be serialized with {self.serializer.name}: {exc}"
            ) from exc
        if len(data) > self.max_payload:
            raise ValueTooLargeError(
                f"task {task_name!r}: payload is {len(data)} bytes, over max_payload={self.max_payload} bytes"
            )
        return data

    # -- reading and managing ------------------------------------------------------------------------
    async def get(self, job_id: str) -> JobInfo | None:
        """The job's status, progress, attempts, result or error and timestamps; None if unknown."""
        queue_of(job_id)  # a clear error for a malformed id, whatever the backend
        record = await self.backend.get(job_id)
        return None if record is None else self._info(record)

    async def list(
        self,
        status: Status | str | None = None,
        queue: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[JobInfo], str | None]:
        """Jobs newest first, filtered; returns the page and the cursor of the next one (None at the end)."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise ConfigurationError("limit", f"{limit!r} is not between 1 and 1000")
        st = None if status is None else Status.parse(status)
        records, nxt = await self.backend.list(st, queue, limit, cursor)
        return [self._info(r) for r in records], nxt

    async def cancel(self, job_id: str) -> JobInfo | None:
        """Queued: it never runs. Running: cancelled cooperatively, then reported as cancelled."""
        queue_of(job_id)
        record = await self.backend.cancel(job_id, time.time())
        if record is None:
            return None
        if record.status == Status.CANCELLED:
            self.hooks.emit("cancelled", record, attempt=0)
        return self._info(record)

    async def retry(self, job_id: str) -> JobInfo | None:
        """Queue a failed, dead or cancelled job again, with a fresh set of attempts.

        Returns the job as queued again, like `cancel()` returns the job it cancelled; None when
        nothing was queued: the job is unknown, or not failed, dead or cancelled. (It used to return
        True/False: truth tests such as `if await jobs.retry(id):` read the same as before.)
        """
        queue_of(job_id)
        if not await self.backend.retry(job_id, time.time()):
            return None
        return await self.get(job_id)

    async def depth(self) -> dict[tuple[str, int], int]:
        """Ready jobs per (queue, priority)."""
        return await self.backend.depth()

    async def cleanup(self) -> int:
        """Delete finished jobs older than the retention; workers call this on their own."""
        return await self.backend.cleanup(time.time() - self.retention)

    async def close(self) -> None:
        """Close the backend connection and the sync facade (if one was made); safe to call twice."""
        if self._backend is not None:
            backend, self._backend = self._backend, None
            await backend.close()
        if self._sync is not None:
            facade, self._sync = self._sync, None
            facade.close()

    async def __aenter__(self) -> JobQueue:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def sync(self) -> SyncJobQueue:
        """The blocking facade for synchronous code: `jobs.sync().enqueue(send_email, "a@example.com")`.

        One facade per queue, made on first call and returned again after (one background loop, as
        `Cache.sync`); a method, not a property, as it always was. `close()` on it (or leaving
        `with jobs.sync():`) stops its loop, which starts again on its next call.
        """
        if self._sync is None:
            with self._sync_lock:
                if self._sync is None:
                    from perfkit.jobs.sync import SyncJobQueue

                    self._sync = SyncJobQueue(self)
        return self._sync

    def sibling(self) -> JobQueue:
        """The same queue (config, tasks, hooks) with its own backend connection, for another event loop."""
        twin = JobQueue(config=self.config)
        twin.registry, twin.hooks = self.registry, self.hooks
        return twin

    def worker(self, queues: Sequence[str] | None = None, **options: Any) -> Worker:
        """A worker for `queues` (all queues with registered tasks by default); `await worker.run()`."""
        from perfkit.jobs.worker import Worker

        return Worker(self, queues, **options)

    def _info(
        self, r: JobRecord, args: tuple[Any, ...] | None = None, kwargs: dict[str, Any] | None = None
    ) -> JobInfo:
        if args is None or kwargs is None:
            args, kwargs = (), {}
            try:
                raw_args, kwargs, _ = unpack_payload(self.serializer.loads(r.payload))
                args = tuple(raw_args)
            except Exception:  # noqa: S110 - an unreadable payload is reported by the worker, not here
                pass
        result = None
        if r.result is not None:
            try:
                result = self.serializer.loads(r.result)
            except Exception:
                result = r.result
        return JobInfo(
            id=r.id, type=r.task, queue=r.queue, priority=priority_of(r.priority),
            status=r.effective_status(), args=args, kwargs=kwargs, progress=r.progress,
            progress_message=r.progress_message, result=result,
            error=r.corrupt_error or r.error, traceback=r.traceback, attempts=r.attempts,
            max_attempts=r.max_attempts, key=r.key,
            queued_at=r.queued_at, run_at=r.run_at, started_at=r.started_at, completed_at=r.completed_at,
            cancel_requested=r.cancel_requested,
        )  # fmt: skip
