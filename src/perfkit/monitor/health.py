"""Readiness checks: database, cache/Redis, job queue, disk, memory, CPU; run concurrently with timeouts.

A check is any object with a `name` and an async `__call__()` returning `CheckResult` (or raising,
which counts as a failure). `status` is "pass", "warn" (reported, still ready) or "fail" (503).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from perfkit.monitor import system
from perfkit.redaction import redact


@dataclass
class CheckResult:
    status: str = "pass"
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Check:
    """A named readiness check around an async function returning a `CheckResult`."""

    name: str
    fn: Callable[[], Awaitable[CheckResult]]
    critical: bool = True  # a failure of a non-critical check is reported as "warn"

    async def __call__(self) -> CheckResult:
        return await self.fn()


async def run_checks(checks: Sequence[Check], limit: float) -> tuple[bool, dict[str, Any]]:
    """Run every check at once, each bounded by `limit` seconds; (ready, JSON body)."""

    async def one(check: Check) -> dict[str, Any]:
        start = time.perf_counter()
        try:
            async with asyncio.timeout(limit):
                result = await check()
        except TimeoutError:
            result = CheckResult("fail", f"no answer within {limit:g}s")
        except Exception as exc:
            result = CheckResult("fail", redact(f"{type(exc).__name__}: {exc}"))
        if result.status == "fail" and not check.critical:
            result.status = "warn"
        return {
            "name": check.name,
            "status": result.status,
            "latency_ms": round((time.perf_counter() - start) * 1000, 2),
            "message": result.message,
            **({"details": result.details} if result.details else {}),
        }

    results = await asyncio.gather(*(one(c) for c in checks))
    ready = all(r["status"] != "fail" for r in results)
    status = "fail" if not ready else ("warn" if any(r["status"] == "warn" for r in results) else "pass")
    return ready, {"status": status, "checks": {r.pop("name"): r for r in results}}


def database_check(engine: Any) -> Check:
    """`SELECT 1` on a SQLAlchemy Engine (in a thread) or AsyncEngine."""

    async def probe() -> CheckResult:
        from sqlalchemy import text

        if hasattr(engine, "sync_engine"):
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        else:

            def ping() -> None:
                with engine.connect() as conn:
                    conn.execute(text("SELECT 1"))

            await asyncio.to_thread(ping)
        return CheckResult("pass", f"{engine.dialect.name} answered")

    return Check("database", probe)


def cache_check(cache: Any) -> Check:
    async def probe() -> CheckResult:
        await cache.ping()
        return CheckResult("pass", f"{cache.url.split('://')[0]} cache answered")

    return Check("cache", probe)


def store_check(store: Any) -> Check:
    async def probe() -> CheckResult:
        await store.ping()
        return CheckResult("pass", f"{store.kind} monitor store answered")

    return Check("monitor_store", probe, critical=False)


def jobs_check(jobs: Any, max_depth: int = 10_000, max_age: float = 600.0) -> Check:
    """Fails when more than `max_depth` jobs are ready or the oldest ready job waited over `max_age` s."""

    async def probe() -> CheckResult:
        from perfkit.monitor.jobs import queue_status

        status = await queue_status(jobs)
        age = status["oldest_age_s"]
        details = {"depth": status["depth"], "oldest_age_s": None if age is None else round(age, 1)}
        if status["total"] > max_depth:
            return CheckResult("fail", f"{status['total']} jobs ready (limit {max_depth})", details)
        if age is not None and age > max_age:
            return CheckResult("fail", f"oldest ready job waited {age:.0f}s (limit {max_age:g}s)", details)
        return CheckResult("pass", f"{status['total']} jobs ready", details)

    return Check("jobs", probe)


def system_checks(
    disk_path: str = "/", disk: float = 95.0, memory: float = 95.0, cpu: float = 90.0
) -> list[Check]:
    """Disk and memory fail readiness when nearly full; CPU only warns (busy is not broken)."""

    shared: dict[str, Any] = {}

    async def sample() -> dict[str, float]:  # one psutil reading shared by the three checks of a run
        now = time.monotonic()
        if "task" not in shared or now - shared["at"] > 0.5:
            shared["task"], shared["at"] = (
                asyncio.ensure_future(asyncio.to_thread(system.sample, disk_path)),
                now,
            )
        result: dict[str, float] = await asyncio.shield(shared["task"])
        return result

    def threshold(name: str, key: str, limit: float, critical: bool) -> Check:
        async def probe() -> CheckResult:
            value = (await sample())[key]
            status = "fail" if value > limit else "pass"
            return CheckResult(status, f"{value:.1f}% used (limit {limit:g}%)", {"percent": value})

        return Check(name, probe, critical=critical)

    return [
        threshold("disk", "disk_percent", disk, True),
        threshold("memory", "memory_percent", memory, True),
        threshold("cpu", "cpu_percent", cpu, False),
    ]
