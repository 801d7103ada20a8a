"""What perfkit.db keeps of an engine: nothing once the application drops it, even never uninstrumented."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.ext.asyncio import create_async_engine

from perfkit.db import instrument_engine, track
from perfkit.metrics import Collector


def test_an_engine_never_uninstrumented_is_freed(tmp_path: Path) -> None:
    """Instrumented, used, dropped: `del engine; gc.collect()` frees the engine and its collector (whose
    N+1 detector no engine needs any more)."""
    collector = Collector()
    engine = create_engine(f"sqlite:///{tmp_path / 'a.db'}")
    assert instrument_engine(engine, collector=collector).engine is engine
    with engine.connect() as conn, track() as stats:
        conn.execute(text("SELECT 1"))
    assert stats.db_count == 1
    engine_ref, collector_ref = weakref.ref(engine), weakref.ref(collector)
    del engine, conn, collector
    gc.collect()
    assert engine_ref() is None and collector_ref() is None


async def test_an_async_engine_never_uninstrumented_is_freed(tmp_path: Path) -> None:
    """The same for an AsyncEngine: it and the sync engine behind it are freed; the `Instrumented`
    handle kept by the application then has no engine and an empty status."""
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'b.db'}")
    done = instrument_engine(engine, collector=Collector())
    async with engine.connect() as conn:
        with track() as stats:
            await conn.execute(text("SELECT 1"))
    assert stats.db_count == 1
    await engine.dispose()
    refs = weakref.ref(engine), weakref.ref(engine.sync_engine)
    del engine, conn
    gc.collect()
    assert [ref() for ref in refs] == [None, None]
    assert done.engine is None and done.status() == {}
