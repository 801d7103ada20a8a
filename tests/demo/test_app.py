"""The demo app: both variants of every endpoint return identical data; the optimised ones do less."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from perfkit import Cache
from perfkit.demo.app import runtime
from perfkit.demo.app.api import DemoState, create_app
from perfkit.demo.app.seed import seed
from perfkit.demo.app.tasks import build_jobs
from perfkit.demo.settings import DemoSettings

pytestmark = pytest.mark.sqlite


class Demo:
    def __init__(self, client: httpx.AsyncClient, state: DemoState) -> None:
        self.client, self.state = client, state
        self.statements: list[str] = []
        self.executed: list[tuple[str, Any]] = []  # (statement, parameters) as sent to the driver

    async def get(self, path: str) -> tuple[Any, int]:
        """(JSON body, number of SQL statements the request ran)."""
        before = len(self.statements)
        response = await self.client.get(path)
        assert response.status_code == 200, response.text
        return response.json(), len(self.statements) - before


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "demo.db"
    volume, _, reused = seed(create_engine(f"sqlite:///{path}"), scale=0.01)
    assert not reused
    assert volume.tickets == 2000
    return path


@pytest.fixture
async def demo(seeded: Path, namespace: str, tmp_path: Path) -> AsyncIterator[Demo]:
    engine = create_async_engine(f"sqlite+aiosqlite:///{seeded}")
    cache = Cache("memory://", namespace=namespace)
    settings = DemoSettings.choose(tmp_path, token="t")
    settings = DemoSettings(**{**settings.__dict__, "database_url": f"sqlite:///{seeded}"})
    jobs = build_jobs(settings, cache=cache)
    state = DemoState.build(engine, cache, jobs)
    transport = httpx.ASGITransport(app=create_app(state))
    async with httpx.AsyncClient(transport=transport, base_url="http://demo") as client:
        d = Demo(client, state)

        def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
            d.statements.append(statement)
            d.executed.append((statement, parameters))

        event.listen(engine.sync_engine, "before_cursor_execute", record)
        yield d
    state.invalidator.close()
    await jobs.queue.close()
    await cache.close()
    await engine.dispose()


async def run_jobs(demo: Demo) -> None:
    """Run every queued job to completion, as `perfkit worker --burst` does."""
    assert demo.state.jobs is not None
    stats = await demo.state.jobs.queue.worker(burst=True, concurrency=2).run()
    assert stats.errors == 0
    assert stats.finished == stats.claimed > 0


async def test_statistics_same_data_one_query_instead_of_eleven(demo: Demo) -> None:
    """The aggregate returns what the 11 COUNT queries return, in one statement."""
    naive, n_naive = await demo.get("/naive/stats/3")
    fast, n_fast = await demo.get("/fast/stats/3")
    assert naive == fast
    assert naive["total"] == sum(
        naive[s] for s in ("open", "in_progress", "pending", "resolved", "closed", "cancelled")
    )
    assert (n_naive, n_fast) == (11, 1)


async def test_ticket_list_same_data_without_n_plus_one(demo: Demo) -> None:
    """selectinload returns the same tickets and comments in 2 statements instead of 1 + 25."""
    naive, n_naive = await demo.get("/naive/tickets/3")
    fast, n_fast = await demo.get("/fast/tickets/3")
    assert naive == fast
    assert len(naive) == 25
    assert any(t["comments"] for t in naive)
    assert (n_naive, n_fast) == (26, 2)


async def test_ticket_list_n_plus_one_removed_by_one_loader_line(demo: Demo) -> None:
    """/loader/tickets (naive plus one relationship_loader line) returns the naive data in 2 statements, and
    perfkit's N+1 detector flags the naive route but not it."""
    from perfkit.db import instrument_engine, track, uninstrument_engine
    from perfkit.db.config import DbConfig
    from perfkit.metrics import Collector

    collector = Collector()
    instrument_engine(demo.state.engine, config=DbConfig(nplusone_threshold=3), collector=collector)
    try:
        with track("/naive/tickets/{org_id}"):
            naive, n_naive = await demo.get("/naive/tickets/3")
        assert [f["relationship"] for f in collector.findings("n_plus_one")] == ["Ticket.comments"]
        with track("/loader/tickets/{org_id}"):
            fixed, n_fixed = await demo.get("/loader/tickets/3")
    finally:
        uninstrument_engine(demo.state.engine)
    assert fixed == naive
    assert (n_naive, n_fixed) == (26, 2)
    assert len(collector.findings("n_plus_one")) == 1  # only the naive route's


async def test_dashboard_cached_and_invalidated_by_a_write(demo: Demo) -> None:
    """The cached dashboard equals the computed one, costs no query when warm, and a write through the
    app is visible on the next read (ORM-driven invalidation end to end)."""
    naive, n_naive = await demo.get("/naive/dashboard/3")
    fast, _ = await demo.get("/fast/dashboard/3")
    assert naive == fast
    again, n_warm = await demo.get("/fast/dashboard/3")
    assert again == fast
    assert (n_naive, n_warm) == (3, 0)
    ticket_id = fast["recent"][0]["id"]
    new_status = "cancelled" if fast["recent"][0]["status"] != "cancelled" else "open"
    response = await demo.client.post(f"/tickets/{ticket_id}/status/{new_status}")
    assert response.status_code == 200
    after, n_after = await demo.get("/fast/dashboard/3")
    assert n_after == 3  # recomputed
    assert after["recent"][0]["status"] == new_status
    assert after == (await demo.get("/naive/dashboard/3"))[0]


async def test_search_same_rows_but_only_one_variant_can_use_the_index(demo: Demo, seeded: Path) -> None:
    """Both searches return the same rows; the plan of the statement each endpoint actually sent shows
    that only the optimised one can use the index."""
    plans = []
    for variant in ("naive", "fast"):
        before = len(demo.executed)
        rows, _ = await demo.get(f"/{variant}/search?assignee_id=5&status=open")
        plans.append(rows)
        [(statement, parameters)] = demo.executed[before:]
        with create_engine(f"sqlite:///{seeded}").connect() as conn:
            cursor = conn.connection.driver_connection.execute(f"EXPLAIN QUERY PLAN {statement}", parameters)
            plans.append(" ".join(str(r[-1]) for r in cursor.fetchall()))
    naive_rows, naive_plan, fast_rows, fast_plan = plans
    assert naive_rows == fast_rows
    assert naive_plan.startswith("SCAN tickets"), naive_plan  # every row read
    assert "SEARCH tickets USING INDEX ix_tickets_assignee_status" in fast_plan, fast_plan


async def test_bad_write_input_is_refused(demo: Demo) -> None:
    """An unknown status or ticket gets a clear 4xx, and nothing changes."""
    assert (await demo.client.post("/tickets/1/status/exploded")).status_code == 422
    assert (await demo.client.post("/tickets/999999/status/open")).status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "field"),
    [
        ("post", "/naive/notify/3?message=" + "x" * 201, "message"),
        ("post", "/fast/notify/3?message=" + "x" * 201, "message"),
        ("post", "/fast/notify/3?message=", "message"),
        ("get", "/naive/stats/99999999999999999999", "org_id"),
        ("post", "/fast/export/0", "org_id"),
        ("get", "/naive/search?assignee_id=-1", "assignee_id"),
        ("post", "/tickets/3000000000/status/open", "ticket_id"),
    ],
)
async def test_bad_input_is_a_422_naming_the_parameter(
    demo: Demo, method: str, path: str, field: str
) -> None:
    """Out-of-range ids and over-long messages are refused by name on both variants, never a 500."""
    response = await getattr(demo.client, method)(path)
    assert response.status_code == 422, response.text
    assert field in response.text


async def test_export_job_produces_the_blocking_export_with_progress(demo: Demo) -> None:
    """The background export's CSV equals the one built inside the request; progress is recorded;
    a second request while it is queued gets the same job (one export per organization at a time)."""
    blocking = await demo.client.get("/naive/export/3")
    assert blocking.status_code == 200
    assert blocking.headers["content-type"].startswith("text/csv")
    rows = blocking.text.splitlines()
    assert rows[0] == "id,title,status,priority,assignee_id,created_at"
    queued = await demo.client.post("/fast/export/3")
    again = await demo.client.post("/fast/export/3")
    assert queued.status_code == again.status_code == 202
    job = queued.json()
    assert again.json()["id"] == job["id"]
    assert (await demo.client.get(f"/jobs/{job['id']}/export.csv")).status_code == 409  # not run yet
    await run_jobs(demo)
    done = (await demo.client.get(job["status_url"])).json()
    assert done["status"] == "succeeded"
    assert done["progress"] == 1.0
    assert done["result"]["rows"] == len(rows) - 1
    exported = await demo.client.get(f"/jobs/{job['id']}/export.csv")
    assert exported.text == blocking.text


async def test_notification_job_sends_what_the_inline_variant_sends(demo: Demo) -> None:
    """Inline and background notification reach the same users and record one row per user."""
    inline = await demo.client.post("/naive/notify/3", params={"message": "inline"})
    assert inline.status_code == 200
    queued = await demo.client.post("/fast/notify/3", params={"message": "inline"})
    assert queued.status_code == 202
    await run_jobs(demo)
    done = (await demo.client.get(queued.json()["status_url"])).json()
    assert done["status"] == "succeeded"
    assert done["result"] == inline.json()
    assert inline.json()["sent"] == len(inline.json()["users"]) > 0
    async with demo.state.sessions() as s:
        count = await s.scalar(
            text("SELECT count(*) FROM notifications WHERE organization_id = 3 AND message = 'inline'")
        )
    assert count == 2 * inline.json()["sent"]


async def test_unknown_job_is_a_404(demo: Demo) -> None:
    """Status and download of a job that does not exist answer 404, not 500."""
    assert (await demo.client.get("/jobs/nope")).status_code == 404
    assert (await demo.client.get("/jobs/nope/export.csv")).status_code == 404


async def test_closing_the_worker_queue_disposes_what_its_jobs_opened(
    seeded: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Closing the queue, as `perfkit worker` does on exit, disposes the engine and cache its jobs opened."""
    closed: list[str] = []
    real_engine, real_cache = runtime.async_engine, runtime.cache

    def engine(settings: DemoSettings) -> AsyncEngine:
        opened = real_engine(settings)
        event.listen(opened.sync_engine, "engine_disposed", lambda _engine: closed.append("engine"))
        return opened

    def cache(settings: DemoSettings) -> Cache:
        opened = real_cache(settings)
        close = opened.close

        async def tracked_close() -> None:
            closed.append("cache")
            await close()

        opened.close = tracked_close  # type: ignore[method-assign]
        return opened

    monkeypatch.setattr(runtime, "async_engine", engine)
    monkeypatch.setattr(runtime, "cache", cache)
    settings = DemoSettings.choose(tmp_path, token="t")  # the jobs' queue and cache: files in tmp_path
    settings = DemoSettings(**{**settings.__dict__, "database_url": f"sqlite:///{seeded}"})
    jobs = build_jobs(settings)  # as the worker process builds it: no cache shared with an app
    job = await jobs.export_report.enqueue(3)
    stats = await jobs.queue.worker(burst=True, concurrency=1).run()
    assert (stats.finished, stats.errors) == (1, 0)
    info = await jobs.queue.get(job.id)
    assert info is not None and info.status == "succeeded"
    assert closed == []
    await jobs.queue.close()
    assert sorted(closed) == ["cache", "engine"]


@pytest.mark.memory
async def test_a_status_write_reaches_the_live_channel_after_its_commit(
    seeded: Path, namespace: str, tmp_path: Path
) -> None:
    """With a hub, a committed status change is published on `org:<id>` (ticket, status, title); a refused
    write publishes nothing; job events go to `job:<id>`; /live serves the page with the hashed client."""
    from perfkit.realtime import Hub

    engine = create_async_engine(f"sqlite+aiosqlite:///{seeded}")
    cache = Cache("memory://", namespace=namespace)
    settings = DemoSettings.choose(tmp_path, token="t")
    settings = DemoSettings(**{**settings.__dict__, "database_url": f"sqlite:///{seeded}"})
    hub = Hub("memory://")
    jobs = build_jobs(settings, cache=cache, hub=hub)
    state = DemoState.build(engine, cache, jobs, hub)
    transport = httpx.ASGITransport(app=create_app(state))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://demo") as client:
            board = (await client.get("/fast/dashboard/2")).json()
            ticket = board["recent"][0]
            status = "pending" if ticket["status"] != "pending" else "open"
            assert (await client.post(f"/tickets/{ticket['id']}/status/{status}")).status_code == 200
            assert (await client.post(f"/tickets/{ticket['id']}/status/bogus")).status_code == 422
            job = (await client.post("/fast/export/2")).json()
            await jobs.queue.worker(burst=True, concurrency=1).run()
            await hub.drain()
            assert await hub.history("org:2") == [
                {"ticket": ticket["id"], "status": status, "title": ticket["title"]}
            ]
            events = [e["event"] for e in await hub.history(f"job:{job['id']}")]
            assert events[0] == "enqueued" and events[-1] == "succeeded", events
            page = await client.get("/live")
            assert page.status_code == 200 and "/live/static/perfkit-realtime." in page.text
            assert "{{" not in page.text
            script = page.text.split('<script src="')[1].split('"')[0]
            served = await client.get(script)
            assert served.headers["cache-control"] == "public, max-age=31536000, immutable"
    finally:
        state.invalidator.close()
        await jobs.queue.close()  # closes the hub it was given, too
        await cache.close()
        await engine.dispose()
