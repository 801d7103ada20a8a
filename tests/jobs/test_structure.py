"""The jobs package's seams: one resolved config, one event emitter, one cached sync facade."""

from __future__ import annotations

from pathlib import Path

import pytest

from perfkit.errors import ConfigurationError
from perfkit.jobs import JobQueue, JobsConfig


def test_config_is_resolved_once_and_shared_by_siblings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Arguments win over PERFKIT_JOBS_* which win over defaults; a sibling shares the one JobsConfig."""
    monkeypatch.setenv("PERFKIT_JOBS_RETENTION", "2h")
    jobs = JobQueue(f"sqlite:///{tmp_path}/a.db", lease="10s", default_queue="mail")
    assert (jobs.config.lease, jobs.config.retention, jobs.config.max_payload) == (10.0, 7200.0, 1024**2)
    assert (jobs.lease, jobs.retention, jobs.default_queue) == (10.0, 7200.0, "mail")
    monkeypatch.setenv("PERFKIT_JOBS_RETENTION", "1h")  # read once: a later change is not seen
    twin = jobs.sibling()
    assert twin.config is jobs.config
    assert twin.retention == 7200.0
    assert twin.tasks is jobs.tasks and twin.hooks is jobs.hooks
    again = JobQueue(config=JobsConfig.resolve(jobs.url, lease=10))
    assert again.url == jobs.url and again.lease == 10.0


def test_config_argument_errors(tmp_path: Path) -> None:
    """config= is a JobsConfig and is not mixed with the settings it already holds."""
    config = JobsConfig.resolve(f"sqlite:///{tmp_path}/a.db")
    with pytest.raises(ConfigurationError, match="config"):
        JobQueue(f"sqlite:///{tmp_path}/b.db", config=config)
    with pytest.raises(ConfigurationError, match="config"):
        JobQueue(config="sqlite:///x.db")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="max_payload"):
        JobsConfig.resolve(max_payload="lots")
    assert "k" * 16 not in repr(JobsConfig.resolve(serializer="pickle", pickle_key="k" * 16))


def test_one_emitter_builds_every_event() -> None:
    """Hooks.emit builds the JobEvent from the record (attempt overridable); a failing hook is skipped."""
    from perfkit.jobs.hooks import Hooks, JobEvent
    from perfkit.jobs.models import JobRecord

    record = JobRecord(
        id="q:1", queue="q", task="t", payload=b"", priority=5, max_attempts=3, timeout=None, key=None,
        run_at=0.0, queued_at=0.0, attempts=2,
    )  # fmt: skip
    hooks = Hooks()
    hooks.emit("started", record)  # no hook: nothing to build, nothing raised
    seen: list[JobEvent] = []

    def broken(event: JobEvent) -> None:
        raise RuntimeError("monitoring bug")

    hooks.add(broken)
    hooks.add(seen.append)
    hooks.emit("failed", record, duration=0.5, error="E: x")
    hooks.emit("enqueued", record, attempt=0)
    assert seen == [
        JobEvent("failed", "q:1", "t", "q", 5, 2, duration=0.5, error="E: x"),
        JobEvent("enqueued", "q:1", "t", "q", 5, 0),
    ]


def test_jobs_modules_import_no_cycle_but_the_lazy_facade() -> None:
    """No import cycle among perfkit.jobs modules (type-checking imports included); only JobQueue's
    lazy imports of its worker and sync facade, inside functions, point back."""
    import ast

    import perfkit.jobs

    root = Path(perfkit.jobs.__file__).parent
    graph: dict[str, set[str]] = {}
    for path in root.glob("*.py"):
        name = f"perfkit.jobs.{path.stem}"
        tree = ast.parse(path.read_text())
        edges: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                node.body = []  # an import inside a function is lazy: not an edge
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("perfkit.jobs."):
                target = ".".join(node.module.split(".")[:3])
                if (root / f"{target.rsplit('.', 1)[1]}.py").exists():
                    edges.add(target)
        graph[name] = edges - {name, "perfkit.jobs.__init__"}
    graph["perfkit.jobs.queue"].discard("perfkit.jobs.sync")  # the facade's return annotation
    cycles = []
    for start in graph:
        stack, seen = [(start, [start])], set()
        while stack:
            node, trail = stack.pop()
            for nxt in graph.get(node, ()):
                if nxt == start:
                    cycles.append(trail)
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*trail, nxt]))
    assert cycles == []


def test_sync_facade_is_cached_one_loop_and_restartable(tmp_path: Path) -> None:
    """jobs.sync() returns one facade with one loop thread, as Cache.sync; closed, it starts again."""
    import asyncio
    import threading

    jobs = JobQueue(f"sqlite:///{tmp_path}/s.db")

    @jobs.task(queue="s", name="s.job")
    async def job(ctx: object, n: int) -> int:
        return n

    def portal_threads() -> int:
        return sum(t.name == "perfkit-jobs-sync" for t in threading.enumerate())

    facade = jobs.sync()
    assert jobs.sync() is facade
    first = facade.enqueue(job, 1)
    assert jobs.sync().get(first.id) is not None
    assert portal_threads() == 1
    with jobs.sync() as again:
        assert again is facade
    assert portal_threads() == 0
    assert facade.enqueue(job, 2).args == (2,)  # a closed facade starts again on its next call
    assert portal_threads() == 1
    asyncio.run(jobs.close())  # closing the queue closes its facade too
    assert portal_threads() == 0
    assert jobs.sync() is not facade


async def test_worker_reads_the_backend_at_use(tmp_path: Path) -> None:
    """A worker made before jobs.close() runs on the queue's new backend, as before the redesign."""
    jobs = JobQueue(f"sqlite:///{tmp_path}/w.db")

    @jobs.task(queue="w", name="w.job")
    async def job(ctx: object) -> int:
        return 1

    info = await job.enqueue()
    worker = jobs.worker(burst=True)
    await jobs.close()
    stats = await worker.run()
    done = await jobs.get(info.id)
    await jobs.close()
    assert stats.finished == 1
    assert done is not None and done.result == 1
