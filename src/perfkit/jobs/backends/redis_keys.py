"""Every Redis key the job queue uses, in one place.

All keys of one queue share the hash tag `{<prefix>:q:<queue>}`, so every script touches one slot and
the queue runs unchanged on Redis Cluster:

    {p:q:name}:ready         zset  id -> priority * 1e13 + sequence (strict priority, FIFO within)
    {p:q:name}:delayed       zset  id -> run_at (ms, rounded up): delay=, at=, retry backoff
    {p:q:name}:active        zset  id -> lease expiry (ms): the only place a lease's expiry is kept
    {p:q:name}:wake          list  a token pushed on enqueue; idle workers BLPOP it (no polling)
    {p:q:name}:seq           counter for FIFO order
    {p:q:name}:keys          hash  idempotency key -> job id
    {p:q:name}:done:<status> zset  id -> completed_at (s): the finished jobs, for list() and cleanup
    {p:q:name}:job:<id>      hash  the job record
    {p:q:name}:registered    string set for 60 s by ENQUEUE when it (re)adds the queue to `<p>:queues`

Outside the queues: `<p>:queues` (set of queue names, for list() and depth()) and `<p>:once:<name>`
(periodic tick claims).
"""

from __future__ import annotations

BAND = 10**13  # priority band width in the ready score; 2^53 / BAND leaves room for 900 bands


class QueueKeys:
    __slots__ = ("active", "delayed", "done", "job", "keys", "ready", "seq", "tag", "wake")

    def __init__(self, prefix: str, queue: str) -> None:
        tag = f"{{{prefix}:q:{queue}}}:"
        self.tag = tag
        self.ready = tag + "ready"
        self.delayed = tag + "delayed"
        self.active = tag + "active"
        self.wake = tag + "wake"
        self.seq = tag + "seq"
        self.keys = tag + "keys"
        self.done = tag + "done:"
        self.job = tag + "job:"


def queues_key(prefix: str) -> str:
    return f"{prefix}:queues"


def once_key(prefix: str, name: str) -> str:
    return f"{prefix}:once:{name}"
