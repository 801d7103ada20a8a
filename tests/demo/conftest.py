"""The demo tests' stores: a Redis database of their own, the PostgreSQL test database under a URL with a
password that must never be shown."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from perfkit.demo.settings import PG_JOBS_TABLE, PG_SCHEMA

from ..conftest import POSTGRES_URL, REDIS_URL, require_postgres, require_redis

DEMO_REDIS_DB = 14  # the demo writes several key families; its own database keeps them apart


@pytest.fixture
def demo_redis_url() -> Any:
    require_redis()
    import redis

    parts = urlsplit(REDIS_URL)
    url = urlunsplit(parts._replace(path=f"/{DEMO_REDIS_DB}"))
    client = redis.Redis.from_url(url)
    try:
        yield url
    finally:
        for key in client.scan_iter(count=1000):  # this database is the demo test's alone
            client.delete(key)
        client.close()


@pytest.fixture
def demo_postgres_url() -> Any:
    """The test database, with a password the server ignores (trust auth) that must never be shown."""
    require_postgres()
    import psycopg

    parts = urlsplit(POSTGRES_URL)
    user = parts.username or "postgres"
    host = parts.hostname or "127.0.0.1"
    yield urlunsplit(parts._replace(netloc=f"{user}:hunter2@{host}:{parts.port or 5432}"))
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE")
        conn.execute(f"DROP TABLE IF EXISTS {PG_JOBS_TABLE}, {PG_JOBS_TABLE}_once")
