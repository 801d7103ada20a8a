"""Backend-independent pieces: cron, retry policies, settings, the public API and the CLI wiring."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

import perfkit
from perfkit.cli import build_parser
from perfkit.errors import BackendUnavailableError, ConfigurationError, MissingDependencyError
from perfkit.jobs import Exponential, Fixed, JobQueue, Priority, Status
from perfkit.jobs.cron import Cron
from perfkit.jobs.models import new_job_id, priority_of, queue_of
from perfkit.jobs.retry import make_policy


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def test_cron_next_tick() -> None:
    """Cron expressions find the next matching minute, strictly after the given time."""
    assert Cron("*/5 * * * *").next_after(ts("2026-01-01T10:02:30")) == ts("2026-01-01T10:05:00")
    assert Cron("*/5 * * * *").next_after(ts("2026-01-01T10:05:00")) == ts("2026-01-01T10:10:00")
    assert Cron("0 3 * * 1").next_after(ts("2026-01-01T00:00:00")) == ts("2026-01-05T03:00:00")  # a Monday
    assert Cron("30 8 1 * *").next_after(ts("2026-01-15T00:00:00")) == ts("2026-02-01T08:30:00")
    assert Cron("0 0 * * 7").next_after(ts("2026-01-01T00:00:00")) == ts("2026-01-04T00:00:00")  # Sunday


@pytest.mark.parametrize("expr", ["* * * *", "61 * * * *", "*/0 * * * *", "a * * * *", "0 0 31 2 *"])
def test_cron_rejects_bad_expressions(expr: str) -> None:
    """Malformed or impossible cron expressions fail with a ConfigurationError naming 'cron'."""
    with pytest.raises(ConfigurationError, match="cron"):
        Cron(expr).next_after(0)


def test_priority_of_is_the_enum_call_without_its_cost() -> None:
    """priority_of gives every stored value the member Priority() gives, and refuses the same others."""
    assert [priority_of(v) for v in range(4)] == [Priority(v) for v in range(4)]
    assert priority_of(0) is Priority.CRITICAL
    for bad in (4, -1, 99):
        with pytest.raises(ValueError, match=str(bad)):
            priority_of(bad)


def test_job_ids_are_time_ordered_distinct_and_keep_their_shape() -> None:
    """10,000 ids made at once are distinct, sort in the order made, and are '<queue>:' + 24 hex digits."""
    ids = [new_job_id("mail") for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert [i[:19] for i in ids] == sorted(i[:19] for i in ids)  # the time part (µs) never goes back
    assert all(queue_of(i) == "mail" and len(i) == 29 and int(i[5:], 16) >= 0 for i in ids)


def test_retry_policies() -> None:
    """Exponential backoff doubles with jitter up to its cap; fixed and custom policies are honoured."""
    policy = Exponential(base=1, cap=10)
    delays = [policy.delay(n) for n in range(1, 8)]
    assert 0.5 <= delays[0] <= 1
    assert 4 <= delays[3] <= 8
    assert all(d <= 10 for d in delays)
    assert Exponential(base=1, cap=10, jitter=False).delay(3) == 4
    assert make_policy("fixed").delay(5) == Fixed().delay(1) == 1.0
    assert make_policy(lambda n: n * 3).delay(2) == 6
    with pytest.raises(ConfigurationError, match="backoff"):
        make_policy("sometimes")


def test_settings_and_registration_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Bad settings name the setting; PERFKIT_JOBS_* variables are read when no argument is given."""
    monkeypatch.setenv("PERFKIT_JOBS_URL", f"sqlite:///{tmp_path}/env.db")
    monkeypatch.setenv("PERFKIT_JOBS_LEASE", "45s")
    jobs = JobQueue()
    assert jobs.url.endswith("env.db")
    assert jobs.lease == 45.0
    with pytest.raises(ConfigurationError, match="retries"):
        jobs.task(retries=-1)
    with pytest.raises(ConfigurationError, match="queue"):
        jobs.task(queue="bad name")
    with pytest.raises(ConfigurationError, match="lease"):
        JobQueue("sqlite:///x.db", lease=0.1)
    with pytest.raises(ConfigurationError, match="jobs_url"):
        _ = JobQueue("nosuch://x").backend
    with pytest.raises(ConfigurationError, match="job_id"):
        queue_of("plain")
    assert Priority.parse("critical") is Priority.CRITICAL
    assert Status.parse("dead") is Status.DEAD


def test_missing_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """A backend whose driver is missing fails at first use with the pip install hint."""
    monkeypatch.setitem(sys.modules, "asyncpg", None)
    monkeypatch.delitem(sys.modules, "perfkit.jobs.backends.postgres", raising=False)
    with pytest.raises(MissingDependencyError, match=r"perfkit\[postgres\]"):
        _ = JobQueue("postgresql://127.0.0.1/x").backend


def test_public_api_is_exported_lazily() -> None:
    """`perfkit.JobQueue` is in the sorted __all__ and importing perfkit does not import the jobs part."""
    assert "JobQueue" in perfkit.__all__
    assert perfkit.__all__ == sorted(perfkit.__all__)
    code = "import sys, perfkit; assert 'perfkit.jobs' not in sys.modules; print(perfkit.JobQueue.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "JobQueue"


def test_worker_command_runs_a_burst(tmp_path: Path) -> None:
    """`perfkit worker MODULE:ATTR --burst` runs the queued jobs and exits 0; a bad target exits 2."""
    (tmp_path / "burst_app.py").write_text(
        "from perfkit.jobs import JobQueue\n"
        f"jobs = JobQueue('sqlite:///{tmp_path}/cli.db')\n"
        "@jobs.task(queue='cli', name='cli.double')\n"
        "def double(ctx, n):\n    return n * 2\n"
        "if __name__ == '__main__':\n"
        "    import asyncio\n"
        "    asyncio.run(double.enqueue(21))\n"
    )
    subprocess.run([sys.executable, "burst_app.py"], cwd=tmp_path, check=True)
    cmd = [sys.executable, "-m", "perfkit.cli", "worker", "burst_app:jobs", "--burst", "--queues", "cli"]
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert "finished=1" in done.stderr
    bad = subprocess.run(
        [*cmd[:4], "burst_app:nothing"], cwd=tmp_path, capture_output=True, text=True, timeout=30
    )
    assert bad.returncode == 2
    assert "has no attribute 'nothing'" in bad.stderr
    assert "worker" in build_parser().format_help()


def test_worker_command_warns_about_a_queue_no_task_uses(tmp_path: Path) -> None:
    """`perfkit worker --queues cli,nosuchqueue` logs a warning naming nosuchqueue (and not cli)."""
    (tmp_path / "typo_app.py").write_text(
        "from perfkit.jobs import JobQueue\n"
        f"jobs = JobQueue('sqlite:///{tmp_path}/cli.db')\n"
        "@jobs.task(queue='cli', name='cli.noop')\n"
        "def noop(ctx):\n    return None\n"
    )
    cmd = [sys.executable, "-m", "perfkit.cli", "worker", "typo_app:jobs", "--burst"]
    done = subprocess.run(
        [*cmd, "--queues", "cli,nosuchqueue"], cwd=tmp_path, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if "WARNING" in line]
    assert len(warnings) == 1, done.stderr
    assert "no registered task uses queue 'nosuchqueue'" in warnings[0]
    assert "['cli']" in warnings[0]
    quiet = subprocess.run(
        [*cmd, "--queues", "cli"], cwd=tmp_path, capture_output=True, text=True, timeout=30
    )
    assert "WARNING" not in quiet.stderr


@pytest.mark.parametrize("scheme", ["redis", "postgresql"])
async def test_backend_down_fails_clearly_and_worker_keeps_trying(scheme: str) -> None:
    """Server down: enqueue raises BackendUnavailableError; a worker retries instead of crashing."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once the socket is closed
    jobs = JobQueue(f"{scheme}://127.0.0.1:{port}/0", lease=1)

    @jobs.task(queue="down")
    async def nothing(ctx: object) -> None: ...

    try:
        with pytest.raises(BackendUnavailableError):
            await nothing.enqueue()
        worker = jobs.worker()
        second_error = asyncio.Event()
        record = worker._backend_error

        def on_error(exc: BaseException) -> None:
            record(exc)
            if worker.stats.errors >= 2:
                second_error.set()

        worker._backend_error = on_error  # type: ignore[method-assign]  # observe the worker's own count
        run = asyncio.create_task(worker.run())
        async with asyncio.timeout(10):
            await second_error.wait()
        worker.stop()
        stats = await run
        assert stats.errors >= 2
        assert stats.claimed == 0
    finally:
        await jobs.close()
