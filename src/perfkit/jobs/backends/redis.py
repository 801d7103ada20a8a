"""Redis job backend: atomic Lua scripts per queue, blocking wake-up, leases in a sorted set.

Each operation is one script call on one queue's hash tag (see `redis_keys.py`), so a claim of a
whole batch, the acknowledgement of a whole batch, or a lease renewal is one round trip. Idle
workers block on BLPOP of the queues' wake lists instead of polling.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import defaultdict
from collections.abc import Awaitable, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import msgspec
import redis.asyncio as aioredis
from redis import exceptions as rexc

from perfkit._cancel import cancelling
from perfkit.backends import BackendURL
from perfkit.errors import BackendError, BackendUnavailableError, ConfigurationError
from perfkit.jobs.backends import redis_lua as lua
from perfkit.jobs.backends._pipeline import EnqueuePipeline, chunks
from perfkit.jobs.backends.redis_keys import BAND, QueueKeys, once_key, queues_key
from perfkit.jobs.models import MAX_STALLS, JobRecord, Outcome, Status, queue_of

T = TypeVar("T")
_OUR_OPTIONS = {"prefix"}
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
# a node or the cluster down, failing over or moving a slot: an outage, not a bug
_UNAVAILABLE = (
    rexc.ConnectionError,
    rexc.TimeoutError,
    OSError,
    rexc.ClusterError,
    rexc.TryAgainError,
    rexc.SlotNotCoveredError,
)
SOCKET_TIMEOUT = 5.0  # redis-py 8's default, explicit: an idle BLPOP is kept under it (see _blpop_max)
_FLOATS = ("run_at", "started_at", "completed_at", "progress")  # a lease expiry lives in `active`
_INTS = ("priority", "attempts", "token", "stalls")
_TEXTS = ("id", "status", "key", "progress_message", "error", "traceback")
# the immutable part of a job, one msgpack blob: (task, payload, max_attempts, timeout, queued_at)
_encode_spec = msgspec.msgpack.Encoder().encode
_decode_spec = msgspec.msgpack.Decoder(tuple[str, bytes, int, float | None, float]).decode
_STATUS_KEYS = {
    Status.QUEUED: ("ready",),
    Status.SCHEDULED: ("delayed",),
    Status.RUNNING: ("active",),
}


def _driver_url(url: BackendURL) -> str:
    parts = urlsplit(url.raw)
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k not in _OUR_OPTIONS])
    return urlunsplit(parts._replace(query=query))


def _record(flat: Sequence[bytes]) -> JobRecord:
    raw = {flat[i].decode(): flat[i + 1] for i in range(0, len(flat), 2)}
    values: dict[str, Any] = {"result": raw.get("result")}
    task, values["payload"], values["max_attempts"], values["timeout"], values["queued_at"] = _decode_spec(
        raw["spec"]
    )
    values["task"] = task
    values["queue"] = queue_of(raw["id"].decode())
    for name in _TEXTS:
        if name in raw:
            values[name] = raw[name].decode()
    for name in _FLOATS:
        if name in raw:
            values[name] = float(raw[name])
    for name in _INTS:
        if name in raw:
            values[name] = int(raw[name])
    values["cancel_requested"] = raw.get("cancel_requested") == b"1"
    return JobRecord(**values)


def _ms_up(t: float) -> int:
    """`t` (s) in whole milliseconds, rounded up: a delayed job's score is never before its run_at."""
    ms = math.ceil(t * 1000)
    return ms + 1 if ms / 1000 < t else ms  # t * 1000 itself may have been rounded down


def _ms_down(t: float) -> int:
    """`t` (s) in whole milliseconds, rounded down: a claim at `t` never promotes a job due after `t`."""
    ms = math.floor(t * 1000)
    return ms - 1 if ms / 1000 > t else ms


def _claimed(queue: str, f: Sequence[Any], now: float, lease: float) -> JobRecord:
    """A claimed job from CLAIM's HMGET: id, spec, priority, attempts, key, run_at."""
    task, payload, max_attempts, timeout, queued_at = _decode_spec(f[1])
    attempts = int(f[3])
    return JobRecord(
        id=f[0].decode(), queue=queue, task=task, payload=payload, priority=int(f[2]), status=Status.RUNNING,
        attempts=attempts, max_attempts=max_attempts, timeout=timeout,
        key=None if f[4] is None else f[4].decode(),
        run_at=float(f[5]), queued_at=queued_at, started_at=now, token=attempts, lease_until=now + lease,
    )  # fmt: skip


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
        self.client = self._client(url, max_connections)
        self._scripts = {name: self.client.register_script(getattr(lua, name)) for name in _SCRIPTS}
        self._keys: dict[str, QueueKeys] = {}
        self._known_queues: set[str] = set()
        self._pipeline = EnqueuePipeline(self.enqueue_many)
        # wake-list keys -> the BLPOP on them in flight (or done and not yet seen); see wait()
        self._blpops: dict[tuple[str, ...], asyncio.Task[Any]] = {}
        # a BLPOP must return before redis-py's read timeout (socket_timeout) runs out, or an
        # idle_wait above it would fail as an outage every time; Redis may end it ~0.1 s late (hz 10)
        read_timeout = self._connection_kwargs().get("socket_timeout")
        self._blpop_max = max(0.01, min(0.8 * read_timeout, read_timeout - 0.5)) if read_timeout else math.inf

    def _client(self, url: BackendURL, max_connections: int) -> aioredis.Redis:
        return aioredis.Redis.from_url(
            _driver_url(url),
            max_connections=max_connections,
            socket_connect_timeout=5,
            socket_timeout=SOCKET_TIMEOUT,  # `?socket_timeout=` in the URL overrides it
            health_check_interval=30,
            protocol=2,  # replies are read as RESP2 (flat lists); redis-py 8 defaults to RESP3 maps
        )

    def _connection_kwargs(self) -> dict[str, Any]:
        return dict(self.client.connection_pool.connection_kwargs)

    def _k(self, queue: str) -> QueueKeys:
        keys = self._keys.get(queue)
        if keys is None:
            keys = self._keys[queue] = QueueKeys(self.prefix, queue)
        return keys

    @property
    def _retention_s(self) -> int:
        return max(60, math.ceil(self.retention) + 60)  # a safety net; cleanup() deletes on time

    async def _call(self, awaitable: Awaitable[T]) -> T:
        try:
            return await awaitable
        except (rexc.RedisError, rexc.RedisClusterException, OSError) as exc:
            if cancelling():  # a cancel that surfaced as a read timeout: keep it a cancel
                raise asyncio.CancelledError from exc
            if isinstance(exc, _UNAVAILABLE) or (
                isinstance(exc, rexc.RedisClusterException) and "connect" in str(exc)
            ):
                raise BackendUnavailableError(f"Redis {self.url.redacted()} unavailable: {exc}") from exc
            raise BackendError(f"Redis {self.url.redacted()}: {exc}") from exc

    async def _script(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        return await self._call(self._scripts[name](keys=list(keys), args=list(args)))

    # -- the contract --------------------------------------------------------------------------------
    async def enqueue(self, record: JobRecord) -> tuple[str, bool]:
        """One job; enqueues issued while others are in flight share one script call (autopipelining)."""
        return await self._pipeline.enqueue(record, self._enqueue_one)

    async def _enqueue_one(self, record: JobRecord) -> tuple[str, bool]:
        if record.queue not in self._known_queues:
            return (await self.enqueue_many([record]))[0]
        k = self._k(record.queue)
        flat = await self._script("ENQUEUE", [k.ready, k.delayed, k.keys], self._enqueue_args(k, [record]))
        return flat[0].decode(), bool(flat[1])

    async def enqueue_many(self, records: Sequence[JobRecord]) -> list[tuple[str, bool]]:
        """Store `records` in order: one script call per queue (and per 500 jobs)."""
        by_queue: dict[str, list[int]] = defaultdict(list)
        for index, record in enumerate(records):
            by_queue[record.queue].append(index)
        new = [q for q in by_queue if q not in self._known_queues]
        if new:
            await self._call(self.client.sadd(queues_key(self.prefix), *new))
            self._known_queues.update(new)
        results: list[tuple[str, bool]] = [("", False)] * len(records)

        async def one_call(queue: str, indexes: list[int]) -> None:
            k = self._k(queue)
            args = self._enqueue_args(k, [records[i] for i in indexes])
            flat = await self._script("ENQUEUE", [k.ready, k.delayed, k.keys], args)
            for n, i in enumerate(indexes):
                results[i] = (flat[2 * n].decode(), bool(flat[2 * n + 1]))

        calls = [
            one_call(queue, part)
            for queue, indexes in by_queue.items()
            for part in chunks(indexes, [records[i].payload for i in indexes])
        ]
        if len(calls) == 1:
            await calls[0]
        else:
            await asyncio.gather(*calls)
        return results

    @staticmethod
    def _enqueue_args(k: QueueKeys, records: Sequence[JobRecord]) -> list[Any]:
        now = time.time()
        now_ms = _ms_down(now)
        args: list[Any] = [k.tag, now_ms]
        for r in records:
            spec = _encode_spec((r.task, r.payload, r.max_attempts, r.timeout, r.queued_at))
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
        out: list[JobRecord] = []
        # delayed jobs due by `now` are promoted: scores (rounded up) <= now rounded down, never early
        head = [_ms_down(now), 0, int(lease * 1000), repr(now), self._retention_s]
        for queue in queues:  # in the order given: earlier queues first
            k = self._k(queue)
            head[1] = limit - len(out)
            rows = await self._script(
                "CLAIM", [k.ready, k.delayed, k.active], [k.tag, *head, *ok.pop(queue, ())]
            )
            out.extend(_claimed(queue, r, now, lease) for r in rows)
            if len(out) >= limit and not ok:
                break
        return out

    async def wait(self, queues: Sequence[str], idle: float) -> None:
        """Return when a queue's wake list has a token, or after about `idle` seconds.

        The BLPOP runs in a task of its own (see `_blpop`); this call only awaits it, so a cancel (a
        worker stopping) ends this call at once. redis-py can swallow the cancel of a BLPOP just sent
        (asyncio.wait_for around the send) and block for all of `idle`.
        """
        await self._wait_any([tuple(self._k(q).wake for q in queues)], idle)

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
            k = self._k(queue)
            args: list[Any] = [k.tag, int(now * 1000), int(lease * 1000)]
            for job_id, token in items:
                args += (job_id, token)
            stop.update(i.decode() for i in await self._script("RENEW", [k.active], args))
        return stop

    async def release(self, leases: Sequence[tuple[str, int]], now: float) -> None:
        for queue, items in _by_queue(leases).items():
            k = self._k(queue)
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
            k = self._k(queue)
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
            k = self._k(queue)
            rows = await self._script(
                "REAP", [k.active], [k.tag, int(now * 1000), repr(now), self._retention_s, MAX_STALLS]
            )
            dead.extend(_record(r) for r in rows)
        return dead

    async def get(self, job_id: str) -> JobRecord | None:
        flat = await self._call(
            self.client.execute_command(  # type: ignore[no-untyped-call, unused-ignore]
                "HGETALL", self._k(queue_of(job_id)).job + job_id
            )
        )
        return _record(_flatten(flat)) if flat else None

    async def list(
        self, status: Status | None, queue: str | None, limit: int, cursor: str | None
    ) -> tuple[list[JobRecord], str | None]:
        offset = int(cursor) if cursor else 0
        queues = [queue] if queue else sorted(await self._queues())
        statuses = [status] if status else list(Status)
        candidates: list[bytes] = []  # each index read one past the page: is there a next page?
        async with self.client.pipeline(transaction=False) as pipe:
            for q in queues:
                k = self._k(q)
                for st in statuses:
                    for name in _STATUS_KEYS.get(st, ()):
                        pipe.zrange(getattr(k, name), 0, offset + limit, desc=True)
                    if st.terminal:
                        pipe.zrange(k.done + st.value, 0, offset + limit, desc=True)
            results = await self._call(pipe.execute())
        for ids in results:
            candidates.extend(ids)
        candidates = sorted(set(candidates), key=lambda i: i.rpartition(b":")[2], reverse=True)
        page = candidates[offset : offset + limit]
        records: list[JobRecord] = []
        if page:
            async with self.client.pipeline(transaction=False) as pipe:
                for job_id in page:
                    text = job_id.decode()
                    pipe.execute_command("HGETALL", self._k(queue_of(text)).job + text)
                rows = await self._call(pipe.execute())
            records = [_record(_flatten(r)) for r in rows if r]
        more = len(candidates) > offset + limit
        return records, str(offset + limit) if more else None

    async def cancel(self, job_id: str, now: float) -> JobRecord | None:
        k = self._k(queue_of(job_id))
        flat = await self._script(
            "CANCEL", [k.ready, k.delayed], [k.tag, job_id, repr(now), self._retention_s]
        )
        return _record(flat) if flat else None

    async def retry(self, job_id: str, now: float) -> bool:
        k = self._k(queue_of(job_id))
        return bool(await self._script("RETRY", [k.keys], [k.tag, job_id, repr(now)]))

    async def progress(self, job_id: str, value: float, message: str | None) -> None:
        key = self._k(queue_of(job_id)).job + job_id
        await self._script("PROGRESS", [key], [repr(value), message or ""])

    async def cleanup(self, before: float) -> int:
        removed = 0
        for queue in await self._queues():
            k = self._k(queue)
            removed += int(await self._script("CLEANUP", [k.ready], [k.tag, repr(before)]))
        return removed

    async def depth(self) -> dict[tuple[str, int], int]:
        queues = sorted(await self._queues())
        async with self.client.pipeline(transaction=False) as pipe:
            for q in queues:
                for prio in range(4):
                    pipe.zcount(self._k(q).ready, prio * BAND, (prio + 1) * BAND - 1)
            counts = await self._call(pipe.execute())
        it = iter(counts)
        return {(q, p): n for q in queues for p in range(4) if (n := int(next(it)))}

    async def claim_once(self, name: str, ttl: float) -> bool:
        key = once_key(self.prefix, name)
        return bool(await self._call(self.client.set(key, b"1", nx=True, px=max(1, int(ttl * 1000)))))

    async def _queues(self) -> set[str]:
        members = await self._call(self.client.smembers(queues_key(self.prefix)))
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
        await self.client.aclose()  # disconnects the connections in use too: a blocked BLPOP ends now
        await _settled(blpops)

    def _take_blpops(self) -> Sequence[asyncio.Task[Any]]:
        """Cancel the BLPOPs still in flight (a cancel redis-py swallows is ended by the disconnect)."""
        tasks = [*self._blpops.values()]
        self._blpops.clear()
        for task in tasks:
            task.cancel()
        return tasks


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
