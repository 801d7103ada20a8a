"""The demo app: both variants of every endpoint return identical data; the optimised ones do less."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.ext.asyncio import create_async_engine

from perfkit import Cache
from perfkit.demo.app.api import DemoState, create_app
from perfkit.demo.app.seed import seed

pytestmark = pytest.mark.sqlite


class Demo:
    def __init__(self, client: httpx.AsyncClient, state: DemoState) -> None:
        self.client, self.state = client, state
        self.statements: list[str] = []

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
async def demo(seeded: Path, namespace: str) -> AsyncIterator[Demo]:
    engine = create_async_engine(f"sqlite+aiosqlite:///{seeded}")
    cache = Cache("memory://", namespace=namespace)
    state = DemoState.build(engine, cache)
    transport = httpx.ASGITransport(app=create_app(state))
    async with httpx.AsyncClient(transport=transport, base_url="http://demo") as client:
        d = Demo(client, state)
        event.listen(engine.sync_engine, "before_cursor_execute", lambda *a: d.statements.append(a[2]))
        yield d
    state.invalidator.close()
    await cache.close()
    await engine.dispose()


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
    """Both searches return the same rows; only the optimised query's plan uses the index."""
    naive, _ = await demo.get("/naive/search?assignee_id=5&status=open")
    fast, _ = await demo.get("/fast/search?assignee_id=5&status=open")
    assert naive == fast
    plans = []
    for expr in ("assignee_id + 0", "assignee_id"):
        sql = (
            f"EXPLAIN QUERY PLAN SELECT id, title, priority FROM tickets WHERE {expr} = 5 AND status = 'open'"
        )
        with create_engine(f"sqlite:///{seeded}").connect() as conn:
            plans.append(" ".join(str(r[-1]) for r in conn.execute(text(sql))))
    assert plans[0].startswith("SCAN tickets"), plans[0]  # every row read
    assert "SEARCH tickets USING INDEX ix_tickets_assignee_status" in plans[1], plans[1]


async def test_bad_write_input_is_refused(demo: Demo) -> None:
    """An unknown status or ticket gets a clear 4xx, and nothing changes."""
    assert (await demo.client.post("/tickets/1/status/exploded")).status_code == 422
    assert (await demo.client.post("/tickets/999999/status/open")).status_code == 404
