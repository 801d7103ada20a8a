"""Where the demo keeps its data, cache, jobs and monitoring store, and how its processes agree on it.

`perfkit demo` decides once (embedded SQLite files under `--dir` by default; `--postgres` and `--redis`
for the multi-machine setup) and hands the decision to the app and worker processes it starts through
`PERFKIT_DEMO_*` environment variables, so every process reads the same stores.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from perfkit.errors import ConfigurationError

ENV_PREFIX = "PERFKIT_DEMO_"
PG_SCHEMA = "perfkit_demo"  # the demo's tables live in their own schema: never touch a user's tables
PG_JOBS_TABLE = "perfkit_demo_jobs"  # the job queue's tables, apart from a user's own `perfkit_jobs`
# on a user's Redis, the demo's keys apart from an app's own jobs and monitoring store
REDIS_JOBS_PREFIX = "perfkit-demo"
REDIS_MONITOR_PREFIX = "perfkit:demo:monitor:"
SECRET_KEY_ENV = ENV_PREFIX + "SECRET_KEY"  # the Django demo's SECRET_KEY, made up for each run


@dataclass(frozen=True)
class DemoSettings:
    database_url: str  # sync SQLAlchemy URL (seeding); `async_database_url` is what the app uses
    cache_url: str
    jobs_url: str
    monitor_url: str
    token: str = ""  # the monitoring token: the app needs it, the worker does not get it
    scale: float = 1.0

    @classmethod
    def choose(
        cls,
        directory: str | Path,
        *,
        redis: str | None = None,
        postgres: str | None = None,
        token: str,
        scale: float = 1.0,
    ) -> DemoSettings:
        """Embedded by default; PostgreSQL holds the data (and the jobs unless Redis is given);
        Redis holds the cache, the monitoring store and the jobs."""
        base = Path(directory).resolve()
        for name, url, schemes in (
            ("--redis", redis, ("redis://", "rediss://")),
            ("--postgres", postgres, ("postgresql://", "postgres://")),
        ):
            if url is not None and not url.startswith(schemes):
                raise ConfigurationError(name, f"{url!r} must start with {' or '.join(schemes)}")
        database = (
            "postgresql+psycopg://" + postgres.split("://", 1)[1] if postgres else f"sqlite:///{base}/demo.db"
        )
        if redis:
            jobs: str | None = _with_option(redis, "prefix", REDIS_JOBS_PREFIX)
        else:
            jobs = _with_option(postgres, "table", PG_JOBS_TABLE) if postgres else None
        return cls(
            database_url=database,
            cache_url=redis or f"sqlite:///{base}/cache.db",
            jobs_url=jobs or f"sqlite:///{base}/jobs.db",
            monitor_url=_with_option(redis, "prefix", REDIS_MONITOR_PREFIX)
            if redis
            else f"sqlite:///{base}/monitor.db",
            token=token,
            scale=scale,
        )

    @property
    def postgres(self) -> bool:
        return self.database_url.startswith("postgresql")

    @property
    def async_database_url(self) -> str:
        if self.postgres:
            return self.database_url.replace("postgresql+psycopg://", "postgresql+asyncpg://", 1)
        return self.database_url.replace("sqlite:///", "sqlite+aiosqlite:///", 1)

    def environ(self, *, token: bool = True) -> dict[str, str]:
        values = asdict(self)
        if not token:
            values.pop("token")
        return {ENV_PREFIX + k.upper(): str(v) for k, v in values.items()}

    def kinds(self) -> dict[str, str]:
        """What each store is, without hosts or credentials (for output that may be shared)."""
        return {
            "database": "postgresql" if self.postgres else "sqlite",
            "cache": self.cache_url.split("://", 1)[0],
            "jobs": self.jobs_url.split("://", 1)[0],
            "monitor": self.monitor_url.split("://", 1)[0],
        }

    @classmethod
    def from_environ(cls) -> DemoSettings:
        values = {}
        for name in cls.__dataclass_fields__:
            raw = os.environ.get(ENV_PREFIX + name.upper())
            if raw is None and name not in ("scale", "token"):
                raise ConfigurationError(
                    ENV_PREFIX + name.upper(), "is not set; start the demo with `perfkit demo`"
                )
            if raw is not None:
                values[name] = float(raw) if name == "scale" else raw
        return cls(**values)  # type: ignore[arg-type]  # checked field by field above


def _with_option(url: str, name: str, value: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{name}={value}"


def web_rules() -> tuple[Any, ...]:
    """Both demo apps' web rules: the naive routes get no compression or ETag (as an app without
    perfkit), the fast ones the stack's defaults and a Cache-Control; ticket writes are rate-limited."""
    from perfkit.web import Rule

    return (
        Rule(path="/naive/*", compress=False, etag=False),
        Rule(path="/fast/*", cache_control="private, no-cache"),
        Rule(path="/tickets/*", methods=frozenset({"POST"}), rate_limit="50/s"),
    )
