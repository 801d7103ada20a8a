"""The demo's connections, built the same way in every process from one `DemoSettings`."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from perfkit.cache import Cache
from perfkit.demo.settings import PG_SCHEMA, DemoSettings
from perfkit.realtime import Hub

CACHE_NAMESPACE = "demo"
REALTIME_PREFIX = "perfkit:demo:rt:"  # the live page's channels, apart from an app's own on a shared Redis


def _sqlite_pragmas(engine: Engine) -> None:
    """WAL and a busy timeout: the app and the worker write the same file from two processes."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout = 5000")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()


def sync_engine(settings: DemoSettings) -> Engine:
    if settings.postgres:
        engine = create_engine(settings.database_url, connect_args={"options": f"-csearch_path={PG_SCHEMA}"})
        with engine.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {PG_SCHEMA}"))
        return engine
    engine = create_engine(settings.database_url)
    _sqlite_pragmas(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("PRAGMA journal_mode = WAL")  # persistent: recorded in the file
    return engine


def async_engine(settings: DemoSettings) -> AsyncEngine:
    if settings.postgres:
        return create_async_engine(
            settings.async_database_url,
            pool_size=10,
            connect_args={"server_settings": {"search_path": PG_SCHEMA}},
        )
    engine = create_async_engine(settings.async_database_url)
    _sqlite_pragmas(engine.sync_engine)
    return engine


def cache(settings: DemoSettings) -> Cache:
    """Tiered: an in-process L1 over the shared L2 (SQLite file or Redis), kept coherent across processes."""
    return Cache(settings.cache_url, l1="memory://?max_size=10000", namespace=CACHE_NAMESPACE)


def hub(settings: DemoSettings) -> Hub:
    """The live page's hub: on the demo's Redis when it has one (the app and the worker share it),
    else `memory://` (one process: job progress from `perfkit worker` does not reach it)."""
    if hub_is_shared(settings):
        sep = "&" if "?" in settings.cache_url else "?"
        return Hub(f"{settings.cache_url}{sep}prefix={REALTIME_PREFIX}", latest=["job:*"])
    return Hub("memory://", latest=["job:*"])


def hub_is_shared(settings: DemoSettings) -> bool:
    """True when the hub reaches other processes (Redis): then the worker publishes job events too."""
    return settings.cache_url.startswith(("redis://", "rediss://"))
