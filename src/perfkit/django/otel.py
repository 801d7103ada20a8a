"""perfkit.otel in a Django project: `PERFKIT = {"otel": True}` (or a dict of `OtelConfig` fields).

    PERFKIT = {"otel": True}                       # the providers the project registered (global)
    PERFKIT = {"otel": {"cache_spans": False}}     # OtelConfig fields
    PERFKIT_OTEL=1                                 # the environment, when the key is not set

Through the seams perfkit.otel uses for Starlette: `PerfkitMiddleware` makes the server span per request
(`RequestTracer`, named by the URL pattern once Django resolved it), the SQL hooks' listeners make the
statement spans, the perfkit caches' observers the tier spans, the project queue's carrier and events
the job spans (the trace context travels in the job), the process collector's findings become span
events, and `watch_hub(hub)` makes a span per publish. The sources outlive a change of the setting
(tests override it; caches and the project queue are made once per process), so each is subscribed once
to a forwarder that reports to the `OpenTelemetry` of the settings in force. Nothing is subscribed, and
opentelemetry is not imported, until the setting first turns OTel on.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

    from perfkit.django.conf import DjangoSettings
    from perfkit.jobs.hooks import JobEvent
    from perfkit.otel import OpenTelemetry
    from perfkit.otel.web import RequestTracer

__all__ = ["ProjectTelemetry", "install", "monitor_prefix", "project", "watch_cache", "watch_hub"]


class ProjectTelemetry:
    """The project's `OpenTelemetry` as `PERFKIT["otel"]` says now (`now`; None: off), and the forwarders
    the sources are subscribed to."""

    def __init__(self) -> None:
        self.now: OpenTelemetry | None = None
        self._made: OpenTelemetry | None = None  # kept while the config is unchanged (open job spans)
        self._watched: weakref.WeakSet[Any] = weakref.WeakSet()

    def use(self, settings: DjangoSettings) -> OpenTelemetry | None:
        """Report under `settings.otel` from now on; the `OpenTelemetry` (None when off)."""
        config = settings.otel
        if config is None:
            self.now = None
            return None
        made = self._made
        if made is None or made.telemetry.config != config:
            from perfkit.otel import OpenTelemetry

            made = self._made = OpenTelemetry(config)
        self.now = made
        self._subscribe()
        return made

    def tracer(self, settings: DjangoSettings) -> RequestTracer | None:
        """The middleware's tracer under `settings` (None: OTel off)."""
        otel = self.use(settings)
        return otel.requests if otel is not None else None

    def _first(self, source: Any) -> bool:
        if source in self._watched:
            return False
        self._watched.add(source)
        return True

    def _subscribe(self) -> None:
        from perfkit.django import cache_setup, db  # (both import this module)
        from perfkit.django.jobs import project as jobs
        from perfkit.metrics import default_collector

        collector = default_collector()
        if self._first(collector):
            collector.on_finding(self.finding)
        if self._first(jobs.hooks):
            jobs.hooks.add_carrier(self.carry)
            jobs.hooks.add(self.job_event)
        self.watch_statements(db.hooks())
        for cache in cache_setup.made():
            self.watch_cache(cache)

    def watch_statements(self, hooks: Any) -> None:
        """Spans for the statements of the SQL hooks (`perfkit.django.db`) while OTel is on; again after
        `db.install()` reconfigured them (a hook reconfigured in place forgets its listeners)."""
        if self.now is not None:
            for hook in hooks:
                hook.add_listener(self.statement)

    def watch_cache(self, cache: Any) -> None:
        """A span per tier operation of `cache` (a perfkit `Cache`) while OTel is on."""
        if self.now is not None and self._first(cache):
            cache.add_observer(self.cache_operation)

    def watch_hub(self, hub: Any) -> None:
        """A PRODUCER span per `hub.publish` (a `perfkit.realtime.Hub`) while OTel is on."""
        if self._first(hub):
            hub.add_publish_listener(self.publish)

    # -- the forwarders ------------------------------------------------------------------------------
    def statement(self, dialect: str, statement: str, many: bool, elapsed: float) -> None:
        now = self.now
        if now is not None:
            now.statements.statement(dialect, statement, many, elapsed)

    def cache_operation(self, namespace: str, tier: str, op: str, outcome: str, seconds: float) -> None:
        now = self.now
        if now is not None:
            now.cache.operation(namespace, tier, op, outcome, seconds)

    def carry(self) -> Mapping[str, str] | None:
        now = self.now
        return now.jobs.carry() if now is not None else None

    def job_event(self, event: JobEvent) -> None:
        now = self.now
        if now is not None:
            now.jobs.event(event)

    def publish(self, channel: str, seconds: float, error: BaseException | None) -> None:
        now = self.now
        if now is not None:
            now.hubs.publish(channel, seconds, error)

    def finding(self, kind: str, finding: dict[str, Any]) -> None:
        if self.now is not None:
            from perfkit.otel.spans import finding_event

            finding_event(kind, finding)


project = ProjectTelemetry()
watch_cache = project.watch_cache
watch_hub = project.watch_hub
_prefix: list[tuple[str, str | None]] = []


def monitor_prefix() -> str | None:
    """The path perfkit's monitor views are included under in ROOT_URLCONF (`/perf/`), or None: their
    requests are not traced, as the monitor's paths are not in an ASGI app."""
    from django.conf import settings

    urlconf = settings.ROOT_URLCONF
    if not _prefix or _prefix[0][0] != urlconf:
        from django.urls import NoReverseMatch, reverse

        try:
            prefix: str | None = reverse("perfkit:dashboard", urlconf=urlconf)
        except NoReverseMatch:
            prefix = None
        _prefix[:] = [(urlconf, prefix)]
    return _prefix[0][1]


def install() -> None:
    """Report under the PERFKIT setting (`PerfkitConfig.ready()`; again when `settings.PERFKIT` changes)."""
    from django.core.signals import setting_changed

    from perfkit.django import conf

    setting_changed.connect(_on_setting_changed, dispatch_uid="perfkit.django.otel")
    project.use(conf.get_settings())


def _on_setting_changed(*, setting: str, **_: Any) -> None:
    if setting == "PERFKIT":
        from perfkit.django import conf

        conf.reset()
        project.use(conf.get_settings())
    elif setting == "ROOT_URLCONF":
        _prefix.clear()
