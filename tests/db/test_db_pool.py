"""Pool figures of a real SQLAlchemy QueuePool: `overflow` is the connections in use beyond pool_size,
never negative, in `pool_status` and in the Monitor's Prometheus text."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine
from sqlalchemy.pool import QueuePool

from perfkit.db import pool_status
from perfkit.metrics import Collector
from perfkit.monitor import Monitor


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Any]:
    """A QueuePool of 2 (+3 overflow) over a SQLite file."""
    url = f"sqlite:///{tmp_path / 'pool.db'}"
    made = create_engine(url, poolclass=QueuePool, pool_size=2, max_overflow=3)
    yield made
    made.dispose()


@pytest.mark.parametrize(("held", "overflow"), [(0, 0), (1, 0), (2, 0), (3, 1), (5, 3)])
def test_overflow_counts_connections_beyond_the_pool_size(engine: Any, held: int, overflow: int) -> None:
    """With `held` connections checked out of a pool of 2, overflow is max(0, held - 2)."""
    with ExitStack() as stack:
        for _ in range(held):
            stack.enter_context(engine.connect())
        status = pool_status(engine)
    assert status["size"] == 2 and status["checked_out"] == held and status["max_overflow"] == 3
    assert status["overflow"] == overflow


def test_an_overflow_connection_checked_in_is_not_in_use(engine: Any) -> None:
    """4 out, one returned: 3 in use, overflow 1 (SQLAlchemy's own overflow() still says 2)."""
    with ExitStack() as stack:
        held = [stack.enter_context(engine.connect()) for _ in range(4)]
        held[0].close()
        assert engine.pool.overflow() == 2
        assert pool_status(engine)["overflow"] == 1


async def test_prometheus_reports_no_negative_overflow(engine: Any) -> None:
    """An idle pool (SQLAlchemy: overflow -2) exports perfkit_db_pool_overflow 0."""
    with engine.connect():
        pass
    assert engine.pool.overflow() < 0
    monitor = Monitor(collector=Collector(), engine=engine)
    try:
        text = (await monitor.prometheus()).decode()
    finally:
        await monitor.close()
    assert re.search(r"^perfkit_db_pool_overflow 0(\.0)?$", text, re.MULTILINE), text
