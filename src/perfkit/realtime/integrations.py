"""The hub fed by the rest of perfkit: job events on a channel per job, SQLAlchemy writes after commit.

Both publish through `Hub.publish_soon` (in call order, failures logged), so a hook never slows or
breaks the job or the transaction that fired it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from perfkit.errors import ConfigurationError

if TYPE_CHECKING:
    from perfkit.jobs.hooks import JobEvent
    from perfkit.realtime.hub import Hub

PENDING = "perfkit.realtime.pending"  # session.info key: messages waiting for the commit


def follow_jobs(hub: Hub, queue: Any, channel: str = "job:{id}") -> None:
    """Publish each event of `queue` on `channel.format(id=<job id>)`; once per (hub, queue)."""
    if "{id}" not in channel:
        raise ConfigurationError("channel", f"{channel!r} must contain '{{id}}' (one channel per job)")
    if not hub.collector.attach(queue, f"realtime:{channel}"):
        return

    def on_event(event: JobEvent) -> None:
        data = {
            "event": event.name, "job_id": event.job_id, "task": event.task, "queue": event.queue,
            "attempt": event.attempt, "progress": event.progress, "error": event.error,
            "duration": event.duration,
        }  # fmt: skip
        hub.publish_soon(channel.format(id=event.job_id), {k: v for k, v in data.items() if v is not None})

    queue.on_event(on_event)


def publish_on_commit(hub: Hub, session: Any, channel: str, data: Any) -> None:
    """Queue `data` for `channel` on `session`'s transaction: published after its commit, dropped on
    its rollback. `session` is a SQLAlchemy `Session` or `AsyncSession`. Messages queued inside a
    savepoint that is rolled back are still published if the outer transaction commits."""
    from sqlalchemy import event

    from perfkit.realtime.protocol import check_channel, encode

    check_channel(channel)
    encode(data)  # a value without a JSON form fails here, in the caller, not after the commit
    sync_session = getattr(session, "sync_session", session)
    pending: list[tuple[Hub, str, Any]] | None = sync_session.info.get(PENDING)
    if pending is None:
        pending = sync_session.info[PENDING] = []
        event.listen(sync_session, "after_commit", _after_commit)
        event.listen(sync_session, "after_soft_rollback", _after_rollback)
    if not sync_session.in_transaction():
        sync_session.begin()  # no I/O yet: the messages now belong to this transaction's fate
    pending.append((hub, channel, data))


def _after_commit(session: Any) -> None:
    pending = session.info.get(PENDING) or []
    session.info[PENDING] = []
    for hub, channel, data in pending:
        hub.publish_soon(channel, data)


def _after_rollback(session: Any, previous_transaction: Any) -> None:
    """Any rollback of the session's transaction (a no-op one too) drops what waited for its commit;
    a savepoint's rollback keeps them (the outer transaction may still commit)."""
    if not getattr(previous_transaction, "nested", False):
        session.info[PENDING] = []
