"""Redis job backend: atomic Lua scripts per queue, blocking wake-up, leases in a sorted set.

Each operation is one script call on one queue's hash tag (see `redis_keys.py`), so a claim of a
whole batch, the acknowledgement of a whole batch, or a lease renewal is one round trip. Idle
workers block on BLPOP of the queues' wake lists instead of polling.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar, cast

from redis import exceptions as rexc

from perfkit.backends import BackendURL
from perfkit.cancellation import cancelling
from perfkit.errors import BackendError, ConfigurationError
from perfkit.jobs.backends import redis_lua as lua
from perfkit.jobs.backends._pipeline import EnqueuePipeline, chunks
from perfkit.jobs.backends.redis_keys import BAND, QueueKeys, once_key, queues_key
from perfkit.jobs.backends.redis_records import (
    claimed_record,
    encode_spec,
    record_from_hash,
    unreadable_record,
)
from perfkit.jobs.models import (
    MAX_STALLS,
    JobRecord,
    Outcome,
    Status,
    queue_of,
)
from perfkit.redisclient import (
    JOBS_ERRORS,
    Translator,
    close_client,
    connection_kwargs,
    is_cluster,
    jobs_options,
    make_client,
)

T = TypeVar("T")
logger = logging.getLogger("perfkit.jobs")
_SCRIPTS = (
    "ENQUEUE",
    "CLAIM",
    "RENEW",
    "FINISH",
    "FINISH_OK",
    "RELEASE",
    "REAP",
    "CANCEL",
    "RETRY",
    "PROGRESS",
    "CLEANUP",
)
# scripts safe to send twice (a repeat changes nothing more), so retried once on a stale connection:
# not CLAIM (a repeat would lease more jobs) nor RETRY (a repeat would answer "not retried")
_REPEATABLE = frozenset(_SCRIPTS) - {"CLAIM", "RETRY"}
_STATUS_KEYS = {
    Status.QUEUED: ("ready",),
    Status.SCHEDULED: ("delayed",),
    Status.RUNNING: ("active",),
}


def _ms_up(t: float) -> int:
    """`t` (s) in whole milliseconds, rounded up: a delayed job's score is never before its run_at."""
    ms = math.ceil(t * 1000)
    return ms + 1 if ms / 1000 < t else ms  # t * 1000 itself may have been rounded down


def _ms_down(t: float) -> int:
    """`t` (s) in whole milliseconds, rounded down: a claim at `t` never promotes a job due after `t`."""
    ms = math.floor(t * 1000)
    return ms - 1 if ms / 1000 > t else ms


class RedisBackend:
    kind = "redis"

    def __init__(self, url: BackendURL, *, retention: float = 7 * 86400.0, max_connections: int = 64) -> None:
        self.url = url
        self.prefix = url.options.get("prefix", "perfkit")
        if not self.prefix or any(c in self.prefix for c in "{}: "):
            raise ConfigurationError(
                "prefix", f"{self.prefix!r} must be non-empty, without braces, ':' or spaces"
            )
        self.retention = retention
        self.translate = Translator(url.redacted(), JOBS_ERRORS)  # every driver error, in _call
        # 5 s timeouts (`?socket_timeout=` in the URL overrides), health checks, RESP2: see redisclient
        self.client = make_client(url, jobs_options(url, max_connections=max_connections))
        # every job transition is a script: on one node they share one multiplexed connection (no pool
        # checkout per call; the calls of one loop turn in one write); the pool keeps BLPOP and the rest
        self.scripting = self.client
        if not is_cluster(url):
            self.scripting = make_client(url, jobs_options(url, max_connections=1, multiplexed=True))
        self._scripts = {name: self.scripting.register_script(getattr(lua, name)) for name in _SCRIPTS}
        self._keys: dict[str, QueueKeys] = {}
        self._wrong_type_logged: dict[str, float] = {}  # queue -> when its wrong-typed key was logged
        self._pipeline = EnqueuePipeline(self.enqueue_many)
        # wake-list keys -> the BLPOP on them in flight (or done and not yet seen); see wait()
        self._blpops: dict[tuple[str, ...], asyncio.Task[Any]] = {}
        # a BLPOP must return before redis-py's read timeout (socket_timeout) runs out, or an
        # idle_wait above it would fail as an outage every time; Redis may end it ~0.1 s late (hz 10)
        read_timeout = self._connection_kwargs().get("socket_timeout")
        self._blpop_max = max(0.01, min(0.8 * read_timeout, read_timeout - 0.5)) if read_timeout else math.inf

    def _connection_kwargs(self) -> dict[str, Any]:
        return connection_kwargs(self.client)

    def queue_keys(self, queue: str) -> QueueKeys:
        """The Redis key names of `queue` (for this backend and its subclasses)."""
        keys = self._keys.get(queue)
        if keys is None:
            keys = self._keys[queue] = QueueKeys(self.prefix, queue)
        return keys

    @property
    def _retention_s(self) -> int:
        return max(60, math.ceil(self.retention) + 60)  # a safety net; cleanup() deletes on time

    async def _call(self, awaitable: Awaitable[T], again: Callable[[], Awaitable[T]] | None = None) -> T:
        """Await a command, translating driver errors; `again` makes the same command anew.

        Given `again` (only for a command safe to send twice), a connection error is retried once, on
        a fresh connection: after a Redis restart every pooled connection is stale, and the first
        command on each would fail though Redis is back. A timeout is never retried.
        """
        try:
            return await awaitable
        except Exception as exc:
            if (
                again is not None
                and isinstance(exc, rexc.ConnectionError | ConnectionError)
                and not cancelling()
            ):
                return await self._call(again())
            error = self.translate(exc)
            if error is exc:
                raise
            raise error from exc

    async def _script(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        script, keys, args = self._scripts[name], list(keys), list(args)

        def call() -> Awaitable[Any]:
            return cast("Awaitable[Any]", script(keys=keys, args=args))

        return await self._call(call(), call if name in _REPEATABLE else None)

    async def _pipelined(self, commands: Callable[[Any], None], raise_on_error: bool = True) -> list[Any]:
        """Read-only commands in one pipeline (one round trip); safe to send twice, so retried once."""

        async def run() -> list[Any]:
            async with self.client.pipeline(transaction=False) as pipe:
                commands(pipe)
                return list(await pipe.execute(raise_on_error=raise_on_error))

        return await self._call(run(), run)

    # -- the contract --------------------------------------------------------------------------------
    async def enqueue(self, record: JobRecord) -> tuple[str, bool]:
        """One job; enqueues issued while others are in flight share one script call (autopipelining)."""
        return await self._pipeline.enqueue(record, self._enqueue_one)

    async def _enqueue_one(self, record: JobRecord) -> tuple[str, bool]:
        k = self.queue_keys(record.queue)
        flat = await self._script("ENQUEUE", [k.ready, k.delayed, k.keys], self._enqueue_args(k, [record]))
        if flat[-1]:
            await self._register([record.queue])
        return flat[0].decode(), bool(flat[1])

    async def enqueue_many(self, records: Sequence[JobRecord]) -> list[tuple[str, bool]]:
        """Store `records` in order: one script call per queue (and per 500 jobs)."""
        by_queue: dict[str, list[int]] = defaultdict(list)
        for index, record in enumerate(records):
            by_queue[record.queue].append(index)
        results: list[tuple[str, bool]] = [("", False)] * len(records)
        unregistered: set[str] = set()

        async def one_call(queue: str, indexes: list[int]) -> None:
            k = self.queue_keys(queue)
            args = self._enqueue_args(k, [records[i] for i in indexes])
            flat = await self._script("ENQUEUE", [k.ready, k.delayed, k.keys], args)
            for n, i in enumerate(indexes):
                results[i] = (flat[2 * n].decode(), bool(flat[2 * n + 1]))
            if flat[-1]:
                unregistered.add(queue)

        calls = [
            one_call(queue, part)
            for queue, indexes in by_queue.items()
            for part in chunks(indexes, [records[i].payload for i in indexes])
        ]
        if len(calls) == 1:
            await calls[0]
        else:
            await asyncio.gather(*calls)
        if unregistered:
            await self._register(sorted(unregistered))
        return results

    async def _register(self, queues: Sequence[str]) -> None:
        """Add `queues` to the registry list(), depth() and cleanup() read.

        The ENQUEUE script asks for this when its queue's `registered` marker (60 s) is gone: at the
        first enqueue, then once a minute, and at once after Redis lost its data (a restart without
        persistence), so the registry is rebuilt instead of trusted from a per-process cache. The jobs
        are stored already: a failure here is logged, not raised, and healed by a later enqueue.
        """
        key, names = queues_key(self.prefix), list(queues)
        try:
            await self._call(self.client.sadd(key, *names), lambda: self.client.sadd(key, *names))
        except BackendError as exc:
            logger.warning("jobs: could not register queues %s (retried on a later enqueue): %s", names, exc)

    @staticmethod
    def _enqueue_args(k: QueueKeys, records: Sequence[JobRecord]) -> list[Any]:
        now = time.time()
        now_ms = _ms_down(now)
        args: list[Any] = [k.tag, now_ms]
        for r in records:
            spec = encode_spec((r.task, r.payload, r.max_attempts, r.timeout, r.queued_at))
            # due now: ready at once; else delayed, its score rounded up (the script compares with now_ms)
            due_ms = _ms_up(r.run_at) if r.run_at > now else now_ms
            args += (r.id, r.key or "", due_ms, r.priority, spec, repr(r.run_at))
        return args

    async def claim(
        self, queues: Sequence[str], limit: int, lease: float, now: float, finish: Sequence[Outcome] = ()
    ) -> list[JobRecord]:
        ok: dict[str, list[Any]] = defaultdict(list)  # successes ride on the claim of their queue
        other: list[Outcome] = []
        for o in finish:
            if o.status is Status.SUCCEEDED and o.error is None and o.queue in queues:
                ok[o.queue] += (o.id, o.token, o.result or b"")
            else:
                other.append(o)
        if other:
            await self.finish(other)
            # a retry among them, due by the time it was recorded, went straight to `ready`: claim it
            # at a time after that, never with a start before its run_at (ready jobs are not timed)
            now = max(now, time.time())
        out: list[JobRecord] = []
        # delayed jobs due by `now` are promoted: scores (rounded up) <= now rounded down, never early
        head = [_ms_down(now), 0, int(lease * 1000), repr(now), self._retention_s]
        for queue in queues:  # in the order given: earlier queues first
            k = self.queue_keys(queue)
            head[1] = limit - len(out)
            riding = ok.pop(queue, [])
            try:
                rows = await self._script("CLAIM", [k.ready, k.delayed, k.active], [k.tag, *head, *riding])
            except BackendError as exc:
                if not _wrong_type(exc):
                    raise
                # one queue's index overwritten by hand: skip that queue, keep claiming the others
                await self._report_wrong_type(queue, k, exc)
                if riding:  # its successes rode on the claim that failed: record them on their own
                    await self.finish([o for o in finish if o.queue == queue and o not in other])
                continue
            out.extend(claimed_record(queue, r, now, lease) for r in rows)
            if len(out) >= limit and not ok:
                break
        return out

    async def _report_wrong_type(self, queue: str, k: QueueKeys, exc: BackendError) -> None:
        """Log which of a queue's keys holds the wrong type of value (at most once a minute per queue)."""
        last = self._wrong_type_logged.get(queue, 0.0)
        if time.monotonic() - last < 60.0:
            return
        self._wrong_type_logged[queue] = time.monotonic()
        expected = {k.ready: "zset", k.delayed: "zset", k.active: "zset", k.wake: "list"}
        wrong = []
        for key, kind in expected.items():
            found = await self._call(self.client.type(key))
            found = found.decode() if isinstance(found, bytes) else str(found)
            if found not in (kind, "none"):
                wrong.append(f"{key} is a {found}, not a {kind}")
        logger.error(
            "queue %r is not claimed: %s (%s); delete or repair the key to resume it",
            queue, "; ".join(wrong) or "one of its keys holds the wrong type of value", exc,
        )  # fmt: skip

    async def wait(self, queues: Sequence[str], idle: float) -> None:
        """Return when a queue's wake list has a token, or after about `idle` seconds.

        The BLPOP runs in a task of its own (see `_blpop`); this call only awaits it, so a cancel (a
        worker stopping) ends this call at once. redis-py can swallow the cancel of a BLPOP just sent
        (asyncio.wait_for around the send) and block for all of `idle`.
        """
        await self._wait_any(self.wake_groups(queues), idle)

    def wake_groups(self, queues: Sequence[str]) -> list[tuple[str, ...]]:
        """For subclasses: the wake lists `wait` watches, grouped one BLPOP per group. Here one group
        with every queue's wake list (one BLPOP on one node)."""
        return [tuple(self.queue_keys(q).wake for q in queues)]

    async def _wait_any(self, groups: Sequence[tuple[str, ...]], idle: float) -> None:
        """Return when the BLPOP on any group of wake lists returned; its error, if any, is raised."""
        blpops = [self._blpop(keys, idle) for keys in groups]
        done, _ = await asyncio.wait(blpops, return_when=asyncio.FIRST_COMPLETED)
        for keys, task in zip(groups, blpops, strict=True):
            if task in done and self._blpops.get(keys) is task:
                del self._blpops[keys]
        for task in done:
            task.result()  # an outage surfaces here

    def _blpop(self, keys: tuple[str, ...], idle: float) -> asyncio.Task[Any]:
        """The BLPOP on `keys` still in flight (or done and not yet seen), else a new one.

        A BLPOP outlives a wait() that was cancelled or woken by another group: the next wait on the
        same keys takes it over, so a token it popped is not lost; close() ends the rest. It is never
        cut short by hand: redis-py either reads its reply or disconnects its connection (cancel,
        close), so no connection goes back to the pool with a reply pending.
        """
        task = self._blpops.get(keys)
        if task is None:
            blpop = self.client.blpop(list(keys), timeout=max(0.01, min(idle, self._blpop_max)))
            task = self._blpops[keys] = asyncio.ensure_future(self._call(blpop))
            task.add_done_callback(_retrieved)  # an abandoned one that failed is not logged as lost
        return task

    async def renew(self, leases: Sequence[tuple[str, int]], lease: float, now: float) -> set[str]:
        stop: set[str] = set()
        for queue, items in _by_queue(leases).items():
            k = self.queue_keys(queue)
            args: list[Any] = [k.tag, int(now * 1000), int(lease * 1000)]
            for job_id, token in items:
                args += (job_id, token)
            stop.update(i.decode() for i in await self._script("RENEW", [k.active], args))
        return stop

    async def release(self, leases: Sequence[tuple[str, int]], now: float) -> None:
        for queue, items in _by_queue(leases).items():
            k = self.queue_keys(queue)
            args: list[Any] = [k.tag, repr(now), self._retention_s]
            for job_id, token in items:
                args += (job_id, token)
            await self._script("RELEASE", [k.active], args)

    async def finish(self, outcomes: Sequence[Outcome]) -> None:
        groups: dict[str, list[Outcome]] = defaultdict(list)
        for o in outcomes:
            groups[o.queue].append(o)
        now = repr(time.time())
        # one call per queue, concurrently: a pipeline would first check SCRIPT EXISTS, one more round trip
        calls = []
        for queue, items in groups.items():
            k = self.queue_keys(queue)
            ok: list[Any] = [k.tag, now, self._retention_s]
            other: list[Any] = [k.tag, now, self._retention_s]
            for o in items:
                if o.status is Status.SUCCEEDED and o.error is None:
                    ok += (o.id, o.token, o.result or b"")
                else:
                    other += (o.id, o.token, o.status.value, o.result or b"", o.error or "",
                              o.traceback or "", repr(o.run_at), _ms_up(o.run_at))  # fmt: skip
            if len(ok) > 3:
                calls.append(self._script("FINISH_OK", [k.active], ok))
            if len(other) > 3:
                calls.append(self._script("FINISH", [k.active, k.delayed], other))
        await asyncio.gather(*calls)

    async def reap(self, queues: Sequence[str], now: float) -> list[JobRecord]:
        dead: list[JobRecord] = []
        for queue in queues:
            k = self.queue_keys(queue)
            rows = await self._script(
                "REAP", [k.active], [k.tag, int(now * 1000), repr(now), self._retention_s, MAX_STALLS]
            )
            dead.extend(record_from_hash(r) for r in rows)
        return dead

    async def get(self, job_id: str) -> JobRecord | None:
        records = await self._read_jobs([job_id])
        return records[0] if records else None

    async def _read_jobs(self, ids: Sequence[str]) -> list[JobRecord]:
        """The records of `ids` that exist, in order, in one round trip; one that cannot be read (a
        key of the wrong type, a field that is not a number) is returned marked corrupt, not raised."""
        readable = [i for i in ids if _is_job_id(i)]

        def commands(pipe: Any) -> None:
            for job_id in readable:
                pipe.execute_command("HGETALL", self.queue_keys(queue_of(job_id)).job + job_id)

        rows = await self._pipelined(commands, raise_on_error=False) if readable else []
        found = dict(zip(readable, rows, strict=True))
        records: list[JobRecord] = []
        for job_id in ids:
            row = found.get(job_id, _NOT_AN_ID)
            if row is _NOT_AN_ID:  # an index member that is no job id
                records.append(unreadable_record(job_id, f"{job_id!r} is not a job id"))
            elif isinstance(row, rexc.ResponseError):  # WRONGTYPE: not a hash
                records.append(
                    unreadable_record(job_id, f"its Redis key cannot be read as a job hash ({row})")
                )
            elif isinstance(row, Exception):
                await self._call(_raise(row))
            elif row:
                records.append(record_from_hash(_flatten(row), job_id))
        return records

    async def list(
        self, status: Status | None, queue: str | None, limit: int, cursor: str | None
    ) -> tuple[list[JobRecord], str | None]:
        offset = int(cursor) if cursor else 0
        queues = [queue] if queue else sorted(await self._queues())
        statuses = [status] if status else list(Status)
        candidates: list[bytes] = []  # each index read one past the page: is there a next page?

        def commands(pipe: Any) -> None:
            for q in queues:
                k = self.queue_keys(q)
                for st in statuses:
                    for name in _STATUS_KEYS.get(st, ()):
                        pipe.zrange(getattr(k, name), 0, offset + limit, desc=True)
                    if st.terminal:
                        pipe.zrange(k.done + st.value, 0, offset + limit, desc=True)

        results = await self._pipelined(commands, raise_on_error=False)
        for ids in results:
            if isinstance(ids, rexc.ResponseError):  # an index key of the wrong type: nothing to list
                continue
            if isinstance(ids, Exception):
                await self._call(_raise(ids))
            candidates.extend(ids)
        candidates = sorted(set(candidates), key=lambda i: i.rpartition(b":")[2], reverse=True)
        page = candidates[offset : offset + limit]
        records = await self._read_jobs([i.decode(errors="replace") for i in page]) if page else []
        more = len(candidates) > offset + limit
        return records, str(offset + limit) if more else None

    async def cancel(self, job_id: str, now: float) -> JobRecord | None:
        k = self.queue_keys(queue_of(job_id))
        flat = await self._script(
            "CANCEL", [k.ready, k.delayed], [k.tag, job_id, repr(now), self._retention_s]
        )
        if flat == 0:  # its key is not a hash: nothing to cancel, shown as corrupt
            return await self.get(job_id)
        return record_from_hash(flat, job_id) if flat else None

    async def retry(self, job_id: str, now: float) -> bool:
        k = self.queue_keys(queue_of(job_id))
        return bool(await self._script("RETRY", [k.keys], [k.tag, job_id, repr(now)]))

    async def progress(self, job_id: str, value: float, message: str | None) -> None:
        key = self.queue_keys(queue_of(job_id)).job + job_id
        await self._script("PROGRESS", [key], [repr(value), message or ""])

    async def cleanup(self, before: float) -> int:
        removed = 0
        for queue in await self._queues():
            k = self.queue_keys(queue)
            removed += int(await self._script("CLEANUP", [k.ready], [k.tag, repr(before)]))
        return removed

    async def depth(self) -> dict[tuple[str, int], int]:
        queues = sorted(await self._queues())

        def commands(pipe: Any) -> None:
            for q in queues:
                for prio in range(4):
                    pipe.zcount(self.queue_keys(q).ready, prio * BAND, (prio + 1) * BAND - 1)

        counts = await self._pipelined(commands) if queues else []
        it = iter(counts)
        return {(q, p): n for q in queues for p in range(4) if (n := int(next(it)))}

    async def claim_once(self, name: str, ttl: float) -> bool:
        key = once_key(self.prefix, name)
        return bool(await self._call(self.client.set(key, b"1", nx=True, px=max(1, int(ttl * 1000)))))

    async def _queues(self) -> set[str]:
        key = queues_key(self.prefix)
        members = await self._call(self.client.smembers(key), lambda: self.client.smembers(key))
        return {m.decode() if isinstance(m, bytes) else m for m in members}

    async def drop(self) -> None:
        """Delete every key under this backend's prefix (tests use a unique prefix each)."""
        for pattern in (f"{{{self.prefix}:q:*", f"{self.prefix}:*"):
            batch = [key async for key in self.client.scan_iter(match=pattern, count=500)]
            if batch:
                await self._call(self.client.delete(*batch))

    async def close(self) -> None:
        await self._pipeline.close()  # enqueues already accepted are sent before the connection goes
        blpops = self._take_blpops()
        await close_client(self.client)  # disconnects the connections in use too: a blocked BLPOP ends now
        if self.scripting is not self.client:
            await close_client(self.scripting)
        await _settled(blpops)

    def _take_blpops(self) -> Sequence[asyncio.Task[Any]]:
        """Cancel the BLPOPs still in flight (a cancel redis-py swallows is ended by the disconnect)."""
        tasks = [*self._blpops.values()]
        self._blpops.clear()
        for task in tasks:
            task.cancel()
        return tasks


_NOT_AN_ID: Any = object()


def _is_job_id(text: str) -> bool:
    try:
        queue_of(text)
    except ConfigurationError:
        return False
    return True


def _wrong_type(exc: BaseException) -> bool:
    """Whether Redis refused a command on a key of the wrong type (WRONGTYPE), a key written by hand."""
    cause = exc.__cause__
    return isinstance(cause, rexc.ResponseError) and str(cause).startswith("WRONGTYPE")


async def _raise(exc: Exception) -> Any:
    """An error a pipeline returned, raised where `_call` translates it."""
    raise exc


def _retrieved(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()


async def _settled(tasks: Sequence[asyncio.Task[Any]]) -> None:
    """Wait (up to 5 s) for BLPOPs cut by a close; their errors are expected and dropped."""
    if tasks:
        await asyncio.wait(tasks, timeout=5)


def _by_queue(leases: Sequence[tuple[str, int]]) -> dict[str, list[tuple[str, int]]]:
    groups: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for job_id, token in leases:
        groups[queue_of(job_id)].append((job_id, token))
    return groups


def _flatten(reply: Any) -> list[bytes]:
    if isinstance(reply, dict):  # RESP3 or a client that parses HGETALL into a dict
        return [x for pair in reply.items() for x in pair]
    return list(reply)
