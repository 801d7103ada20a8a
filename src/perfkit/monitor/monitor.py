"""`Monitor`: what the endpoints read (window, merged snapshot, findings) and its background tasks.

Background tasks (publishing to the store, alert evaluation, StatsD) run between the ASGI lifespan's
startup and shutdown (or between `await monitor.start()` and `await monitor.close()`). Without them the
endpoints still answer, from this process's own measurements.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from perfkit.metrics import Collector, default_collector
from perfkit.monitor import health, history, report, system
from perfkit.monitor.config import MonitorConfig
from perfkit.monitor.jobs import observe_jobs, queue_status
from perfkit.monitor.publisher import Publisher
from perfkit.monitor.snapshots import Snapshot, add, without_gauges
from perfkit.monitor.store import MonitorStore, registry

log = logging.getLogger("perfkit.monitor")
TIMELESS = ("query_plan",)  # finding kinds not filtered by the window (EXPLAIN once per shape)


class Monitor:
    def __init__(
        self,
        config: MonitorConfig | None = None,
        *,
        collector: Collector | None = None,
        cache: Any = None,
        jobs: Any = None,
        engine: Any = None,
    ) -> None:
        from perfkit.monitor.alerts import AlertManager

        self.config = config or MonitorConfig()
        self.collector = collector or default_collector()
        self.cache, self.jobs, self.engine = cache, jobs, engine
        self.no_cache = "no cache was given to instrument()"  # why "clear cache" has nothing to clear
        self._store: MonitorStore | None = None
        self._publisher: Publisher | None = None
        self._exporter: Any = None
        self._rum: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        if jobs is not None and hasattr(jobs, "on_event"):
            observe_jobs(jobs, self.collector)
        self.alerts = AlertManager(self)

    def observes(self, jobs: Any, collector: Collector) -> bool:
        """True when this monitor already feeds `jobs`' events into `collector`."""
        return jobs is not None and jobs is self.jobs and collector is self.collector

    # -- parts created on first use ------------------------------------------------------------------
    @property
    def store(self) -> MonitorStore:
        if self._store is None:
            self._store = registry.create(
                self.config.store_url(), "monitor_url", retention=self.config.retention
            )
        return self._store

    @property
    def publisher(self) -> Publisher:
        if self._publisher is None:
            self._publisher = Publisher(
                self.collector,
                self.store,
                interval=self.config.publish_interval,
                retention=float(self.config.retention),
                disk_path=self.config.disk_path,
            )
        return self._publisher

    @property
    def exporter(self) -> Any:
        """The `prometheus.Exporter`, whose `registry` (a `CollectorRegistry`) this app owns."""
        if self._exporter is None:
            from perfkit.monitor.prometheus import Exporter

            self._exporter = Exporter()
        return self._exporter

    @property
    def rum(self) -> Any:
        """The `RumAggregator` real users' beacons feed (its families created at the first beacon)."""
        if self._rum is None:
            from perfkit.monitor.rum.aggregate import RumAggregator

            self._rum = RumAggregator(self.config.rum, self.collector)
        return self._rum

    def settle_rum(self, *, everything: bool = False) -> None:
        """Count the beacons' metric ids whose settle time has passed (all with `everything`)."""
        if self._rum is not None:
            self._rum.flush(everything=everything)

    async def _settle_loop(self) -> None:
        interval = min(5.0, max(0.2, float(self.config.rum.settle) / 4))
        while True:  # so the publisher sees settled page views without waiting for the next beacon
            await asyncio.sleep(interval)
            self.settle_rum()

    def count_uncompressed(self, method: str, route: str) -> None:
        self.collector.counter(
            "http_uncompressed_responses_total",
            ("method", "route"),
            "Responses over the size budget sent uncompressed to clients that accept compression",
        ).inc((method, route))

    @property
    def running(self) -> bool:
        return bool(self._tasks)

    # -- lifecycle -----------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start publishing to the store, evaluating alerts and (if configured) pushing to StatsD."""
        if self._tasks:
            return
        self._tasks.append(asyncio.create_task(self.publisher.run(), name="perfkit-monitor-publish"))
        if self.config.rum.enabled:
            self._tasks.append(asyncio.create_task(self._settle_loop(), name="perfkit-monitor-rum"))
        if self.alerts.rules:
            self._tasks.append(asyncio.create_task(self.alerts.run(), name="perfkit-monitor-alerts"))
        if self.config.statsd:
            from perfkit.monitor.statsd import StatsdPusher

            pusher = StatsdPusher(self.collector, self.config.statsd, self.config.statsd_prefix)
            self._tasks.append(
                asyncio.create_task(pusher.run(self.config.statsd_interval), name="perfkit-statsd")
            )

    async def close(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.settle_rum(everything=True)  # pending metric ids are counted before the last publish
        if tasks and self._publisher is not None:
            await self._publisher.flush()
        await self.alerts.close()
        if self._store is not None:
            store, self._store, self._publisher = self._store, None, None
            await store.close()

    # -- reading -------------------------------------------------------------------------------------
    async def _others(self) -> list[tuple[str, float, Snapshot]]:
        if self._publisher is None or self._publisher.published is None:
            return []
        own = self._publisher.proc
        try:
            return [s for s in await self.store.snapshots() if s[0] != own]
        except Exception as exc:  # the store is down: answer from this process alone
            log.warning("monitor store unavailable, answering for this process only: %s", exc)
            return []

    def _own(self) -> Snapshot:
        """This process's measurements not already in the store's retired aggregate."""
        if self._publisher is None:
            return self.collector.snapshot()
        return self._publisher.current()

    async def merged(self) -> tuple[Snapshot, int]:
        """Cumulative measurements of every process (gauges only of the recently published ones), and
        how many processes published recently (this one included)."""
        fresh_after = time.time() - 3 * self.config.publish_interval - 5
        parts: list[Snapshot] = [self._own()]
        live = 1
        for _proc, at, snap in await self._others():
            fresh = at >= fresh_after
            live += fresh
            parts.append(snap if fresh else without_gauges(snap))
        return add(parts), live

    async def processes(self) -> list[dict[str, Any]]:
        """One row per process in the store (this one first): name, last publication, fresh or not, and
        the CPU/memory it published (`system`). The retired aggregate of dead processes is not one."""
        from perfkit.monitor.store.base import RETIRED

        now = time.time()
        fresh_after = now - 3 * self.config.publish_interval - 5
        own = self._publisher.proc if self._publisher is not None else "this process"
        rows = [{"proc": own, "at": now, "fresh": True, "system": await self.system()}]
        for proc, at, snap in await self._others():
            if proc != RETIRED:
                rows.append(
                    {"proc": proc, "at": at, "fresh": at >= fresh_after, "system": snap.get("system", {})}
                )
        return rows

    async def window(self, seconds: float) -> tuple[Snapshot, float, int]:
        """Counters and histograms of the last `seconds` over every process: (delta, covered s, procs)."""
        now = time.time()
        parts: list[Snapshot] = []
        started = self.collector.started
        procs = 1
        rollups = None
        if self._publisher is not None and self._publisher.published is not None:
            try:
                rollups = await self.store.rollups(int((now - seconds) // 60), int(now // 60))
            except Exception as exc:  # the store is down: this process's counts since it started
                log.warning("monitor store unavailable, reporting this process only: %s", exc)
        if rollups is not None and self._publisher is not None:
            parts += [r for _, r in rollups]
            others = await self._others()
            procs += sum(1 for _, at, _ in others if at >= now - seconds)
            started = min([started, *(s.get("started") or now for _, _, s in others)])
            parts.append(self._publisher.unpublished())
        else:
            parts.append(without_gauges(self.collector.snapshot()))
        covered = max(1.0, min(seconds, now - started))
        return add(parts), covered, procs

    async def findings(self, seconds: float) -> dict[str, list[dict[str, Any]]]:
        since = time.time() - seconds
        sources = [self._own()["findings"]]
        sources += [snap.get("findings", {}) for _, _, snap in await self._others()]
        out: dict[str, list[dict[str, Any]]] = {}
        for source in sources:
            for kind, items in source.items():
                if kind in TIMELESS:  # a shape's plan stays its plan: kept whenever it was captured
                    out.setdefault(kind, []).extend(items)
                else:
                    out.setdefault(kind, []).extend(f for f in items if f.get("at", 0) >= since)
        for items in out.values():
            items.sort(key=lambda f: f.get("at", 0))
        return out

    async def system(self) -> dict[str, float]:
        try:
            return await asyncio.to_thread(system.sample, self.config.disk_path)
        except Exception:  # psutil missing: the report says so by leaving the KPIs out
            return {}

    async def report(self, seconds: float | None = None) -> dict[str, Any]:
        seconds = float(seconds or self.config.window)
        self.settle_rum()
        (window, covered, procs), findings, sys_values = await asyncio.gather(
            self.window(seconds), self.findings(seconds), self.system()
        )
        regressions: list[dict[str, Any]] = []
        if self._publisher is not None:
            with contextlib.suppress(Exception):
                regressions = (await history.regressions(self.store, span=min(seconds, 3600.0)))[
                    "regressions"
                ]
        queues = None
        if self.jobs is not None:
            with contextlib.suppress(Exception):
                queues = await queue_status(self.jobs, max_pages=1)
        return report.build(
            window,
            covered,
            findings,
            sys_values,
            self.config.budgets,
            window_s=seconds,
            processes=procs,
            show_parameters=self.config.show_parameters,
            regressions=regressions,
            queues=queues,
        )

    def checks(self) -> list[health.Check]:
        checks: list[health.Check] = []
        if self.engine is not None:
            checks.append(health.database_check(self.engine))
        if self.cache is not None and hasattr(self.cache, "ping"):
            checks.append(health.cache_check(self.cache))
        if self.jobs is not None:
            checks.append(health.jobs_check(self.jobs))
        if self._publisher is not None:
            checks.append(health.store_check(self.store))
        checks += health.system_checks(self.config.disk_path)
        return checks + list(self.config.checks)

    async def readiness(self) -> tuple[bool, dict[str, Any]]:
        return await health.run_checks(self.checks(), self.config.check_timeout)

    async def prometheus(self) -> bytes:
        self.settle_rum()
        snapshot, procs = await self.merged()
        extra: dict[str, Any] = {
            "monitor_processes": ("Processes whose measurements are summed", (), [((), procs)])
        }
        for key, value in (await self.system()).items():
            extra[f"system_{key}"] = ("Host resource use (psutil)", (), [((), value)])
        if self.jobs is not None:
            with contextlib.suppress(Exception):
                depth = await self.jobs.depth()
                rows = [((q, str(p)), n) for (q, p), n in sorted(depth.items())]
                extra["jobs_queue_depth"] = ("Ready jobs per queue and priority", ("queue", "priority"), rows)
        if self.engine is not None:
            from perfkit.db import pool_status

            status = pool_status(self.engine)
            for key in ("size", "checked_out", "overflow"):
                if isinstance(status.get(key), int):
                    extra[f"db_pool_{key}"] = ("Connection pool of this process", (), [((), status[key])])
        return bytes(self.exporter.render(snapshot, extra))

    def mount(self, app: Any) -> Any:
        from perfkit.monitor.routes import MonitorMount

        return MonitorMount(app, self)
