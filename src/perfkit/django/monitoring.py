"""perfkit's monitor in a Django process: one `Monitor` per process, on perfkit's background loop.

It reads the process's collector (what the middleware and the SQL hooks write), publishes it to the
monitor's shared store (`PERFKIT['monitor']['url']`; SQLite by default) every `publish_interval`, so
`/perf/metrics` answered by any gunicorn worker sums every worker, and its readiness checks are Django's:
a `SELECT 1` on each instrumented DATABASES alias, a set-and-get on the PERFKIT['cache'] alias, and the
job queue of `perfkit.django.jobs.get_queue()` when there is one. Its "clear cache" action clears the
perfkit cache behind PERFKIT['cache'] (that cache's namespace only); a Django cache that is not a
perfkit one is left alone (its `clear()` may flush a whole Redis database or memcached). The publisher
starts with the first request (`PerfkitMiddleware`); a forked worker starts its own.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from perfkit.django import background
from perfkit.django.conf import DjangoSettings, get_settings
from perfkit.metrics import default_collector
from perfkit.monitor import Check, CheckResult, Monitor

__all__ = [
    "CacheClear", "DjangoMonitor", "cache_check", "clear_action", "database_check", "ensure_started",
    "get_monitor", "hub_checks", "job_queue",
]  # fmt: skip

log = logging.getLogger("perfkit.django")


def database_check(alias: str) -> Check:
    """`SELECT 1` on DATABASES[alias], in a worker thread with its own connection (closed after)."""

    def probe() -> str:
        from django.db import connections

        connection = connections[alias]
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
                cursor.fetchone()
            return str(connection.vendor)
        finally:
            connection.close()

    async def check() -> CheckResult:
        vendor = await asyncio.to_thread(probe)
        return CheckResult("pass", f"{vendor} answered")

    return Check(f"database:{alias}", check)


def cache_check(alias: str) -> Check:
    """A set and a get on CACHES[alias]: a backend that swallows errors fails too (nothing kept)."""

    def probe() -> None:
        from django.core.cache import caches

        cache = caches[alias]
        key, value = f"perfkit:health:{os.getpid()}", os.urandom(4).hex()
        cache.set(key, value, 30)
        if cache.get(key) != value:
            raise RuntimeError(f"CACHES[{alias!r}] did not keep a value")

    async def check() -> CheckResult:
        await asyncio.to_thread(probe)
        return CheckResult("pass", f"cache {alias!r} answered")

    return Check("cache", check)


def hub_checks() -> list[Check]:
    """The readiness of the real-time hubs of the process (`perfkit.django.realtime.register_hub`)."""
    import sys

    if "perfkit.django.realtime" not in sys.modules:  # no hub was registered: do not import the hub
        return []
    from perfkit.django.realtime import registered_hubs

    checks: list[Check] = []
    for n, hub in enumerate(registered_hubs(), 1):
        probe = hub.check("realtime" if n == 1 else f"realtime:{n}")
        checks.append(Check(probe.name, _as_check_result(probe), critical=probe.critical))
    return checks


def _as_check_result(probe: Any) -> Any:
    async def check() -> CheckResult:
        found = await probe()
        return CheckResult(found.status, found.message, found.details)

    return check


def job_queue() -> Any:
    """The project's JobQueue (`perfkit.django.jobs.get_queue()`), or None without one."""
    try:
        from perfkit.django.jobs import get_queue  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return None
    return get_queue()


class CacheClear:
    """The monitor's "clear cache" action on a Django cache backend over a perfkit `Cache` (its
    `perfkit_cache`): the namespace cleared through the blocking facade, in a worker thread (the monitor
    runs on perfkit's background loop; the facade owns its connections)."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend

    @property
    def namespace(self) -> str:
        return str(self.backend.perfkit_cache.namespace)

    async def clear(self) -> int:
        # PerfkitCache's `sync` is this process's facade (made again after a fork); others: the cache's own
        facade = getattr(self.backend, "sync", None) or self.backend.perfkit_cache.sync
        return int(await asyncio.to_thread(facade.clear))


def clear_action(alias: str) -> tuple[CacheClear | None, str]:
    """The "clear cache" action for CACHES[alias], or None and why there is none."""
    from django.conf import settings as django_settings
    from django.core.cache import caches

    if alias not in getattr(django_settings, "CACHES", {}):
        return None, f"PERFKIT['cache'] is {alias!r}, which is not a CACHES alias"
    backend = caches[alias]
    if getattr(backend, "perfkit_cache", None) is None:
        return None, (
            f"CACHES[{alias!r}] is not a perfkit cache (perfkit.django.cache.PerfkitCache): the monitor "
            "clears only a perfkit cache's namespace"
        )
    return CacheClear(backend), ""


class DjangoMonitor(Monitor):
    """perfkit's `Monitor` with Django's readiness checks in front of its own."""

    def __init__(self, settings: DjangoSettings) -> None:
        from django.conf import settings as django_settings

        super().__init__(settings.monitor, collector=default_collector(), jobs=job_queue())
        self.settings = settings
        aliases = settings.databases
        self.databases = tuple(aliases if aliases is not None else django_settings.DATABASES)
        self.cache_alias = settings.cache
        self.cache, reason = clear_action(settings.cache)  # (no `ping`: Django's own cache check runs)
        self.no_cache = reason or self.no_cache

    def checks(self) -> list[Check]:
        from django.conf import settings as django_settings

        django: list[Check] = [database_check(alias) for alias in self.databases]
        if self.cache_alias in getattr(django_settings, "CACHES", {}):
            django.append(cache_check(self.cache_alias))
        return django + hub_checks() + super().checks()


_state: list[DjangoMonitor] = []


def _forget() -> None:
    _state.clear()  # the parent's monitor ran on a loop thread the fork did not copy


os.register_at_fork(after_in_child=_forget)


def get_monitor() -> DjangoMonitor | None:
    """This process's monitor for the settings in force (None when PERFKIT['monitor'] is False)."""
    settings = get_settings()
    if _state and _state[0].settings is settings:
        return _state[0]
    old = _state[:]
    _state.clear()
    for monitor in old:
        if monitor.running:
            try:
                background.call(monitor.close())
            except Exception as exc:  # the store is gone: nothing left to flush into
                log.warning("monitor: closing the previous monitor failed: %s", exc)
    if settings.monitor is None:
        return None
    _state.append(DjangoMonitor(settings))
    return _state[0]


def ensure_started() -> None:
    """Start this process's monitor (publishing, alerts) on perfkit's background loop, once."""
    monitor = get_monitor()
    if monitor is not None and not monitor.running:
        background.call(monitor.start())


def stop() -> None:
    """Stop the monitor's tasks and close its store (tests; a process that shuts down cleanly)."""
    if _state:
        monitor = _state.pop()
        if monitor.running or monitor.jobs is not None:
            background.call(monitor.close())
