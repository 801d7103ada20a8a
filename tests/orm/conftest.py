"""ORM invalidation fixtures: SQLite and the real PostgreSQL, sync and async sessions."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, sessionmaker

from perfkit import Cache
from perfkit.cache.orm import CacheInvalidator
from tests.conftest import POSTGRES_URL, require_postgres
from tests.orm.models import Base, Organization, Ticket, User


class DB:
    """One database, one cache, one invalidator; `run(fn)` runs fn(session) in a session and commits."""

    def __init__(
        self, kind: str, mode: str, engine: Any, factory: Any, cache: Cache, invalidator: CacheInvalidator
    ) -> None:
        self.kind, self.mode, self.engine, self.factory = kind, mode, engine, factory
        self.cache, self.invalidator = cache, invalidator

    async def run(self, fn: Callable[[Session], Any], commit: bool = True) -> Any:
        """Run fn with a session (the sync session inside an AsyncSession) and commit."""
        if self.mode == "sync":
            with self.factory() as session:
                result = fn(session)
                if commit:
                    session.commit()
                return result
        async with self.factory() as session:
            result = await session.run_sync(fn)
            if commit:
                await session.commit()
            return result

    async def session_call(self, fn: Callable[[Any], Awaitable[Any]]) -> Any:
        """For tests that drive the session themselves (AsyncSession or Session)."""
        if self.mode == "sync":
            with self.factory() as session:
                return await fn(session)
        async with self.factory() as session:
            return await fn(session)


def _seed(session: Session) -> None:
    session.add_all([Organization(id=7, name="seven"), Organization(id=8, name="eight")])
    session.add_all([User(id=1, organization_id=7, name="ann"), User(id=2, organization_id=8, name="bob")])
    session.add_all(
        [
            Ticket(id=1, organization_id=7, title="a", status="open"),
            Ticket(id=2, organization_id=7, title="b", status="open"),
            Ticket(id=3, organization_id=8, title="c", status="open"),
        ]
    )
    session.commit()


@pytest.fixture(
    params=[
        pytest.param(("sqlite", "sync"), marks=pytest.mark.sqlite, id="sqlite-sync"),
        pytest.param(("sqlite", "async"), marks=pytest.mark.sqlite, id="sqlite-async"),
        pytest.param(("postgres", "sync"), marks=pytest.mark.postgres, id="postgres-sync"),
        pytest.param(("postgres", "async"), marks=pytest.mark.postgres, id="postgres-async"),
        # the same suite with the cache on a real Redis Cluster (tiered for the async sessions)
        pytest.param(
            ("sqlite", "sync", "cluster"), marks=pytest.mark.redis_cluster, id="sqlite-sync-cluster"
        ),
        pytest.param(
            ("sqlite", "async", "cluster"), marks=pytest.mark.redis_cluster, id="sqlite-async-cluster"
        ),
    ]
)
async def db(request: pytest.FixtureRequest, tmp_path: Path, namespace: str) -> AsyncIterator[DB]:
    kind, mode, *on = request.param
    schema = None
    if kind == "sqlite":
        sync_url, async_url = f"sqlite:///{tmp_path}/app.db", f"sqlite+aiosqlite:///{tmp_path}/app.db"
        options: dict[str, Any] = {}
    else:
        require_postgres()
        schema = f"t_{uuid.uuid4().hex[:10]}"
        base = POSTGRES_URL.split("://", 1)[1]
        sync_url, async_url = f"postgresql+psycopg://{base}", f"postgresql+asyncpg://{base}"
        options = {"execution_options": {"schema_translate_map": {None: schema}}}
    setup = create_engine(sync_url, **options)
    with setup.begin() as conn:
        if schema:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        Base.metadata.create_all(conn)
    with Session(setup) as session:
        _seed(session)
    if mode == "sync":
        engine: Any = setup
        factory: Any = sessionmaker(setup, expire_on_commit=False)
    else:
        engine = create_async_engine(async_url, **options)
        factory = async_sessionmaker(engine, expire_on_commit=False)
    if on:
        l1 = "memory://" if mode == "async" else None
        cache = Cache(request.getfixturevalue("redis_cluster_url"), l1=l1, namespace=namespace)
        assert cache.stats().tiers["l2"].backend == "redis-cluster"
    else:
        cache = Cache("memory://", namespace=namespace)
    invalidator = CacheInvalidator(cache, delay=0.05, batch_interval=0.1)
    invalidator.instrument(factory)
    invalidator.instrument(engine)
    yield DB(kind, mode, engine, factory, cache, invalidator)
    invalidator.close()
    await cache.clear()
    await cache.close()
    if mode == "async":
        await engine.dispose()
    with setup.begin() as conn:
        if schema:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    setup.dispose()
