"""A private redis-server restarted without persistence under a live JobQueue: it must just carry on.

Each test starts its own server on a free port (never the shared one) and stops it by its pid.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import uuid
from collections.abc import Iterator

import pytest

from perfkit.jobs import Context, JobQueue, Status
from tests import _redis_server
from tests.conftest import free_port

pytestmark = pytest.mark.redis


class Server:
    """A redis-server of the test's own, on one port, that the test can restart (empty: no persistence)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = _redis_server.start(self.port)
        self.url = f"redis://127.0.0.1:{self.port}/0?prefix=pktest-{uuid.uuid4().hex[:8]}"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.proc = _redis_server.start(self.port)


@pytest.fixture
def server() -> Iterator[Server]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed: SKIPPING the Redis restart tests")
    srv = Server()
    yield srv
    srv.stop()


def queue_on(url: str, **options: object) -> JobQueue:
    jobs = JobQueue(url, lease=1, **options)  # type: ignore[arg-type]

    @jobs.task(queue="a", name="a.work")
    async def work(ctx: Context, n: int) -> int:
        return n

    return jobs


async def test_queue_registry_is_rebuilt_after_redis_lost_its_data(server: Server) -> None:
    """After a restart that lost every key, new jobs are seen by list(), depth() and cleanup()."""
    jobs = queue_on(server.url, retention=0)
    try:
        before = await jobs.enqueue("a.work", args=(1,))
        assert [j.id for j in (await jobs.list())[0]] == [before.id]
        server.restart()
        # fresh connections, so this test pins the registry alone (the stale ones are the next test's)
        await jobs.backend.client.connection_pool.disconnect()  # type: ignore[attr-defined]
        after = await jobs.enqueue("a.work", args=(2,))
        assert [j.id for j in (await jobs.list())[0]] == [after.id]
        assert await jobs.depth() == {("a", 2): 1}
        await jobs.worker(burst=True).run()
        info = await jobs.get(after.id)
        assert info is not None
        assert info.status is Status.SUCCEEDED
        assert await jobs.cleanup() == 1
        assert await jobs.get(after.id) is None
    finally:
        await jobs.close()


async def test_first_commands_after_a_restart_succeed_on_stale_connections(server: Server) -> None:
    """Redis restarted on the same port: the first enqueue, get and list each succeed (one retry)."""
    jobs = queue_on(server.url)
    try:
        first = await jobs.enqueue("a.work", args=(1,))
        # several pooled connections, all of which the restart leaves stale
        await asyncio.gather(*(jobs.get(first.id) for _ in range(8)))
        server.restart()
        again = await jobs.enqueue("a.work", args=(2,))
        assert again.status is Status.QUEUED
        got = await asyncio.gather(*(jobs.get(again.id) for _ in range(8)))
        assert {g.id for g in got if g is not None} == {again.id}
        server.restart()
        listed, _ = await jobs.list()
        assert listed == []
        many = await jobs.enqueue_many([jobs.tasks["a.work"].prepare(n) for n in range(3)])
        assert len(many) == 3
        assert await jobs.depth() == {("a", 2): 3}
    finally:
        await jobs.close()


async def test_a_killed_script_connection_costs_no_job_and_no_duplicate(server: Server) -> None:
    """The scripts' shared connection killed by Redis (CLIENT KILL TYPE normal, as a proxy or an admin
    does): the next enqueue is retried on a new connection and stored once; pool-only URL options
    (`?health_check_interval=`) still apply to the pool and do not stop the scripts' connection."""
    import redis

    jobs = queue_on(server.url + "&health_check_interval=10")
    try:
        first = await jobs.enqueue("a.work", args=(1,))
        admin = redis.Redis(port=server.port)
        assert admin.client_kill_filter(_type="normal", skipme=True) >= 1
        admin.close()
        again = await jobs.enqueue("a.work", args=(2,))
        assert again.status is Status.QUEUED
        listed, _ = await jobs.list()
        assert sorted(j.id for j in listed) == sorted([first.id, again.id])
        await jobs.worker(burst=True).run()
        assert {(await jobs.get(j)).status for j in (first.id, again.id)} == {Status.SUCCEEDED}  # type: ignore[union-attr]
    finally:
        await jobs.close()
