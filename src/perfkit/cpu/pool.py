"""`ProcessPool`: warm worker processes for CPU-heavy functions, driven from the event loop.

Each worker is a process started once (modules in `preload` imported before it says it is ready) with
one pipe to the pool; the pool watches the pipes with `loop.add_reader`, so sending a job and reading its
result costs the loop a pickle and a syscall, and no thread sits in between. A job's deadline counts
from `run()` (queue time included); when it passes, the job fails with `TaskTimeoutError` and, if it
was running, its worker is killed (SIGKILL) and replaced. A worker that dies (a segfault, `os._exit`,
the OOM killer) fails the job it was running, only that one, and is replaced. At most `max_pending`
jobs wait for a worker: the next caller waits for room (`when_full="wait"`) or gets `PoolFullError`.
A worker whose RSS passes `max_rss` (or that ran `max_tasks` jobs) is retired after its job and
replaced, so a leaking library cannot grow without bound.

Why not a library: `concurrent.futures.ProcessPoolExecutor` breaks as a whole when one worker dies
and cannot kill a running job; loky (its reusable executor) has the same whole-pool failure on a
crash and no per-job timeout; pebble kills on timeout and isolates crashes, but runs on threads that
hand results over (extra latency on the loop), counts the timeout from when a worker starts the job,
has an unbounded queue and recycles by task count only.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import multiprocessing
import os
import pickle
import signal
import time
from collections.abc import Callable, Sequence
from typing import Any

from perfkit.config import parse_duration
from perfkit.cpu import child
from perfkit.cpu.errors import (
    PoolClosedError,
    PoolFullError,
    TaskTimeoutError,
    WorkerCrashedError,
)
from perfkit.cpu.handles import Job, WorkerHandle, exited, parse_size, remote_error
from perfkit.cpu.refs import check_function
from perfkit.errors import ConfigurationError, SerializationError

__all__ = ["ProcessPool"]

_perf = time.perf_counter


class ProcessPool:
    """Warm worker processes for plain functions (see the module docstring); use from one event loop."""

    def __init__(
        self,
        workers: int | None = None,
        *,
        max_pending: int = 256,
        when_full: str = "wait",
        preload: Sequence[str] = (),
        max_rss: int | str | None = None,
        max_tasks: int | None = None,
        timeout: float | str | None = None,
        start_method: str = "spawn",
        nice: int = 5,
    ) -> None:
        # default: one core left to the event loop (and the rest of the process), at least one worker
        count = workers if workers is not None else max(1, (os.cpu_count() or 2) - 1)
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ConfigurationError("workers", f"{workers!r} is not a count >= 1")
        if isinstance(max_pending, bool) or not isinstance(max_pending, int) or max_pending < 0:
            raise ConfigurationError("max_pending", f"{max_pending!r} is not a count >= 0")
        if when_full not in ("wait", "error"):
            raise ConfigurationError("when_full", f"{when_full!r}: use 'wait' or 'error'")
        if max_tasks is not None and (not isinstance(max_tasks, int) or max_tasks < 1):
            raise ConfigurationError("max_tasks", f"{max_tasks!r} is not a count >= 1")
        if start_method not in multiprocessing.get_all_start_methods():
            raise ConfigurationError("start_method", f"{start_method!r} is not available here")
        self.size = count
        self.max_pending = max_pending
        self.when_full = when_full
        self.preload = tuple(preload)
        self.max_rss = parse_size("max_rss", max_rss)
        self.max_tasks = max_tasks
        self.timeout = None if timeout is None else parse_duration("timeout", timeout) or None
        self.nice = nice
        self._mp: Any = multiprocessing.get_context(start_method)
        self._workers: list[WorkerHandle] = []
        self._idle: collections.deque[WorkerHandle] = collections.deque()
        self._queue: collections.deque[Job] = collections.deque()
        self._room: collections.deque[asyncio.Future[None]] = collections.deque()
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._starting: asyncio.Future[None] | None = None
        self.closed = False
        self.counts = dict.fromkeys(("completed", "failed", "timeouts", "crashes", "recycled", "replaced"), 0)
        self._dispatch: collections.deque[float] = collections.deque(maxlen=1024)

    # -- lifecycle ------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the workers and wait until each has imported `preload` (idempotent)."""
        if self.closed:
            raise PoolClosedError("the process pool is closed")
        if self._starting is None:
            self._loop = asyncio.get_running_loop()
            self._starting = self._loop.create_future()
            try:
                await asyncio.gather(*(self._spawn().ready for _ in range(self.size)))
            except BaseException as exc:
                self._starting.set_exception(exc)
                raise
            self._starting.set_result(None)
        await asyncio.shield(self._starting)

    def _spawn(self) -> WorkerHandle:
        mine, theirs = self._mp.Pipe(duplex=True)
        process = self._mp.Process(
            target=child.main, args=(theirs, self.preload, self.nice), daemon=True, name="perfkit-cpu"
        )
        process.start()
        theirs.close()
        worker = WorkerHandle(process, mine)
        self._workers.append(worker)
        loop = self._loop = self._loop or asyncio.get_running_loop()
        loop.add_reader(mine.fileno(), self._readable, worker)
        return worker

    async def close(self, *, kill: bool = False) -> None:
        """Stop the workers (running jobs fail with `PoolClosedError`); safe to call twice."""
        if self.closed:
            return
        self.closed = True
        error = PoolClosedError("the process pool was closed")
        while self._queue:
            self._settle(self._queue.popleft(), error=error)
        for waiter in self._room:
            if not waiter.done():
                waiter.set_exception(error)
        processes = []
        for worker in list(self._workers):
            if worker.job is not None:
                self._settle(worker.job, error=error)
            self._retire(worker, kill=kill or worker.job is not None)
            processes.append(worker.process)
        deadline = time.monotonic() + 5
        for process in processes:
            while not exited(process) and time.monotonic() < deadline:  # noqa: ASYNC110 - a process
                await asyncio.sleep(0.01)  # exiting has no event to await; polled at most 5 s
            if not exited(process):
                process.kill()
                process.join(1)
        self._workers.clear()

    def terminate(self) -> None:
        """Kill every worker now, without waiting (for a pool whose event loop is gone)."""
        self.closed = True
        for worker in self._workers:
            worker.process.kill()
            worker.process.join(1)
        self._workers.clear()

    def usable_from(self, loop: asyncio.AbstractEventLoop) -> bool:
        """False when the pool was started on another event loop (its pipes are watched there)."""
        return self._loop is None or (self._loop is loop and not loop.is_closed())

    async def __aenter__(self) -> ProcessPool:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- running --------------------------------------------------------------------------------------

    async def run(
        self,
        fn: Callable[..., Any],
        *args: Any,
        timeout: float | None = None,  # noqa: ASYNC109 - the job's deadline, enforced by killing its process
        **kwargs: Any,
    ) -> Any:
        """`fn(*args, **kwargs)` in a worker process; its deadline (`timeout`, else the pool's) counts
        from now, queue time included."""
        return await self.submit(fn, args, kwargs, timeout=timeout)

    async def submit(
        self,
        fn: Callable[..., Any],
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - as in run()
    ) -> Any:
        """`run()` with the arguments as a tuple and a dict (for a function taking `timeout=` itself)."""
        func = check_function(fn)
        if not self.usable_from(asyncio.get_running_loop()):
            raise PoolClosedError(
                f"{func.__qualname__}: this process pool was started on another event loop; "
                "make one pool per loop (perfkit.offload does)"
            )
        if self._starting is None or not self._starting.done():
            await self.start()
        if self.closed:
            raise PoolClosedError(f"the process pool is closed: cannot run {func.__qualname__}")
        limit = self.timeout if timeout is None else parse_duration("timeout", timeout) or None
        job = Job(next(self._ids), func, tuple(args), kwargs or {}, limit)
        loop = asyncio.get_running_loop()
        if limit is not None:
            job.timer = loop.call_at(loop.time() + limit, self._expire, job)
        try:
            await self._submit(job)
            return await job.future
        except asyncio.CancelledError:
            self._abandon(job)
            raise

    async def _submit(self, job: Job) -> None:
        if self._idle and not self._queue:
            self._send(self._idle.popleft(), job)
            return
        while len(self._queue) >= self.max_pending and not job.future.done():
            if self.when_full == "error":
                self._drop(job)
                raise PoolFullError(
                    f"{job.name}: {len(self._queue)} jobs wait for a worker already (max_pending="
                    f"{self.max_pending}); retry later or make the pool with when_full='wait'"
                )
            waiter = asyncio.get_running_loop().create_future()
            self._room.append(waiter)
            await asyncio.wait([waiter, job.future], return_when=asyncio.FIRST_COMPLETED)
            if not waiter.done():
                waiter.cancel()
        if job.future.done():
            return  # its deadline passed while it waited for room
        self._queue.append(job)
        self._pump()

    def _send(self, worker: WorkerHandle, job: Job) -> None:
        try:
            data = pickle.dumps((job.id, job.ref, job.args, job.kwargs))
        except Exception as exc:
            self._idle.appendleft(worker)
            self._settle(job, error=SerializationError(f"arguments of {job.name} cannot be pickled: {exc}"))
            return
        worker.job, job.worker = job, worker
        self._dispatch.append(_perf() - job.submitted)
        worker.conn.send_bytes(data)

    def _pump(self) -> None:
        while self._queue and self._idle:
            job = self._queue.popleft()
            if not job.future.done():
                self._send(self._idle.popleft(), job)
        while self._room and len(self._queue) < self.max_pending:
            waiter = self._room.popleft()
            if not waiter.done():
                waiter.set_result(None)

    # -- outcomes -------------------------------------------------------------------------------------

    def _settle(self, job: Job, value: Any = None, error: BaseException | None = None) -> None:
        if job.timer is not None:
            job.timer.cancel()
        job.worker = None
        if job.future.done():
            return
        if error is None:
            self.counts["completed"] += 1
            job.future.set_result(value)
        else:
            self.counts["failed"] += 1
            job.future.set_exception(error)

    def _readable(self, worker: WorkerHandle) -> None:
        try:
            while worker.conn.poll():
                self._message(worker, pickle.loads(worker.conn.recv_bytes()))  # noqa: S301 - our worker
        except (EOFError, OSError):
            self._died(worker)

    def _message(self, worker: WorkerHandle, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "ready":
            worker.pid, worker.rss = message[1], message[2]
            if not worker.ready.done():
                worker.ready.set_result(None)
            self._release(worker)
            return
        job = worker.job
        worker.job = None
        worker.tasks += 1
        worker.rss = message[-1]
        if job is not None and job.id == message[1]:
            if kind == "ok":
                self._settle(job, message[2])
            else:
                self._settle(job, error=remote_error(job.name, *message[2:6]))
        self._release(worker)

    def _release(self, worker: WorkerHandle) -> None:
        """An idle worker: recycled if over its limits, else handed the next job."""
        if self.closed:
            return
        over_rss = self.max_rss is not None and worker.rss > self.max_rss
        if over_rss or (self.max_tasks is not None and worker.tasks >= self.max_tasks):
            self.counts["recycled"] += 1
            self._retire(worker)
            self._spawn()
            return
        self._idle.append(worker)
        self._pump()

    def _died(self, worker: WorkerHandle) -> None:
        job, started = worker.job, worker.ready.done()
        worker.process.join(0.5)  # the pipe closed: the process is gone or going
        code = worker.process.exitcode
        how = f"exit code {code}"
        if code is not None and code < 0:
            how = f"signal {signal.Signals(-code).name}"
        if not started:  # it never got ready (a bad preload, an unguarded __main__): do not respawn it
            worker.ready.set_exception(
                WorkerCrashedError(f"a worker process died while starting ({how}); see its stderr")
            )
        self._forget(worker)
        if job is not None:
            self.counts["crashes"] += 1
            self._settle(
                job, error=WorkerCrashedError(f"{job.name}: its worker process {worker.pid} died ({how})")
            )
        if started and not self.closed:
            self.counts["replaced"] += 1
            self._spawn()

    def _expire(self, job: Job) -> None:
        job.timer = None
        worker = job.worker
        self.counts["timeouts"] += 1
        where = "running" if worker is not None else "waiting for a worker"
        self._settle(job, error=TaskTimeoutError(f"{job.name}: no result within {job.timeout}s ({where})"))
        if worker is not None:
            self._kill(worker)

    def _abandon(self, job: Job) -> None:
        """The caller was cancelled (a job timeout, a client gone): its worker is killed if it runs it."""
        worker = job.worker
        self._drop(job)
        if worker is not None:
            self._kill(worker)
        elif job in self._queue:
            self._queue.remove(job)

    def _drop(self, job: Job) -> None:
        if job.timer is not None:
            job.timer.cancel()
        job.worker = None
        job.future.cancel()

    def _kill(self, worker: WorkerHandle) -> None:
        worker.job = None
        self._forget(worker)
        worker.process.kill()
        self._reap(worker.process, time.monotonic() + 5)
        if not self.closed:
            self.counts["replaced"] += 1
            self._spawn()

    def _retire(self, worker: WorkerHandle, *, kill: bool = False) -> None:
        self._forget(worker)
        if not kill:
            try:
                worker.conn.send_bytes(pickle.dumps(None))
            except OSError:
                kill = True
        if kill:
            worker.process.kill()
        self._reap(worker.process, time.monotonic() + 5)

    def _reap(self, process: Any, deadline: float) -> None:
        """Collect an exiting process without blocking the loop (polled); killed if it lingers."""
        if exited(process):  # Popen.poll: waitpid(WNOHANG) reaps it
            return
        if time.monotonic() > deadline:
            process.kill()
            deadline = time.monotonic() + 5
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_later(0.02, self._reap, process, deadline)

    def _forget(self, worker: WorkerHandle) -> None:
        if worker in self._workers:
            self._workers.remove(worker)
            if self._loop is not None:
                self._loop.remove_reader(worker.conn.fileno())
        if worker in self._idle:
            self._idle.remove(worker)
        if not worker.ready.done():
            worker.ready.set_exception(WorkerCrashedError(f"worker process {worker.pid} died while starting"))
            worker.ready.exception()

    # -- observation ----------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Workers (idle, busy), pending jobs, outcome counts and dispatch time (JSON-able)."""
        ordered = sorted(self._dispatch)
        n = len(ordered)
        busy = sum(1 for w in self._workers if w.job is not None)
        return {
            "workers": len(self._workers),
            "idle": len(self._idle),
            "busy": busy,
            "pending": len(self._queue),
            "max_pending": self.max_pending,
            **self.counts,
            "rss": {str(w.pid): w.rss for w in self._workers if w.pid is not None},
            "dispatch_ms": {
                "p50": round(ordered[n // 2] * 1000, 4) if n else 0.0,
                "p99": round(ordered[min(n - 1, int(n * 0.99))] * 1000, 4) if n else 0.0,
            },
        }
