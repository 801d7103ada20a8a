"""`settings.PERFKIT`, read once and checked: every key named in an error, unknown keys refused.

PERFKIT = {
    "web": {...},                 # perfkit.web.WebConfig keywords (compress, etag, slow_request, ...)
    "rules": [{"name": "ticket-list", "cache_ttl": 300}, ...],   # perfkit.web.Rule keywords, or Rules
    "rate_limit": "100/minute",   # the default limit for every route
    "db": {...},                  # perfkit.db.DbConfig keywords (slow_query, nplusone_threshold, ...)
    "databases": None,            # the DATABASES aliases to instrument; None: all of them
    "monitor": {"token": "..."},  # perfkit.monitor.MonitorConfig keywords; False: no monitor
    "cache": "default",           # the CACHES alias whose perfkit Cache the response cache uses
    "jobs": "redis://...",        # the job queue: a URL, or perfkit.jobs.JobsConfig keywords
    "otel": True,                 # OpenTelemetry: True, False, or perfkit.otel.OtelConfig keywords;
}                                 #   unset: PERFKIT_OTEL=1 in the environment turns it on
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from perfkit.errors import ConfigurationError

__all__ = ["DjangoSettings", "get_settings", "installers", "reset"]

_KEYS = ("web", "rules", "rate_limit", "db", "databases", "monitor", "cache", "jobs", "otel")


@dataclass(frozen=True)
class DjangoSettings:
    """`settings.PERFKIT`, checked. `web`, `db` and `monitor` are perfkit's own config objects."""

    web: Any  # perfkit.web.config.WebConfig
    db: Any  # perfkit.db.config.DbConfig
    monitor: Any  # perfkit.monitor.config.MonitorConfig, or None when switched off
    databases: tuple[str, ...] | None = None
    cache: str = "default"
    jobs: Any = None  # perfkit.jobs.JobsConfig (from a URL or a dict of its keywords); None: no job queue
    otel: Any = None  # perfkit.otel.OtelConfig; None: no OpenTelemetry reporting
    raw: dict[str, Any] = field(default_factory=dict)


_current: DjangoSettings | None = None


def _section(raw: dict[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key) or {}
    if not isinstance(value, dict):
        raise ConfigurationError(f"PERFKIT['{key}']", f"must be a dict of keywords, not {value!r}")
    return dict(value)


def _build(name: str, factory: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    try:
        return factory(**kwargs)
    except TypeError as exc:  # an unknown keyword: name it
        raise ConfigurationError(name, str(exc)) from None


def _rules(raw: Any) -> list[Any]:
    from perfkit.web.config import Rule

    if not isinstance(raw, Sequence) or isinstance(raw, str | bytes):
        raise ConfigurationError("PERFKIT['rules']", f"must be a list of rules, not {raw!r}")
    rules = []
    for i, item in enumerate(raw):
        if isinstance(item, Rule):
            rules.append(item)
        elif isinstance(item, dict):
            rules.append(_build(f"PERFKIT['rules'][{i}]", Rule, dict(item)))
        else:
            raise ConfigurationError(f"PERFKIT['rules'][{i}]", f"must be a dict or a Rule, not {item!r}")
    return rules


def _jobs(raw: Any) -> Any:
    """PERFKIT['jobs'] (a URL, or a dict of `JobsConfig.resolve` keywords) as a JobsConfig; None: unset."""
    from perfkit.backends import parse_url
    from perfkit.jobs.backends import registry
    from perfkit.jobs.config import JobsConfig

    if raw is None:
        return None
    if isinstance(raw, str):
        raw = {"url": raw}
    if not isinstance(raw, dict):
        raise ConfigurationError("PERFKIT['jobs']", f"must be a URL or a dict of keywords, not {raw!r}")
    try:
        config = JobsConfig.resolve(**raw)
        url = parse_url(config.url, "jobs_url")
    except TypeError as exc:  # an unknown keyword: name it
        raise ConfigurationError("PERFKIT['jobs']", str(exc)) from None
    except ConfigurationError as exc:
        raise ConfigurationError("PERFKIT['jobs']", str(exc)) from None
    if url.scheme not in registry.schemes:
        raise ConfigurationError(
            "PERFKIT['jobs']", f"unknown job backend {url.redacted()!r}; known: {', '.join(registry.schemes)}"
        )
    return config


def _otel(raw: Any) -> Any:
    """PERFKIT['otel'] (True, False, a dict of `OtelConfig` fields, or an OtelConfig) as an OtelConfig or
    None; unset: on when PERFKIT_OTEL is 1/true/yes/on, as for `perfkit.instrument()`."""
    if raw is None:
        raw = os.environ.get("PERFKIT_OTEL", "").strip().lower() in ("1", "true", "yes", "on")
    if raw is False:
        return None
    if not isinstance(raw, bool | dict) and type(raw).__name__ != "OtelConfig":
        raise ConfigurationError(
            "PERFKIT['otel']", f"must be True, False or a dict of OtelConfig fields, not {raw!r}"
        )
    from perfkit.otel import OtelConfig  # (the otel extra: needed only when it is on)

    try:
        return OtelConfig(**raw) if isinstance(raw, dict) else OtelConfig.resolve(raw)
    except (TypeError, ConfigurationError) as exc:  # an unknown field, a field of the wrong type
        raise ConfigurationError("PERFKIT['otel']", str(exc)) from None


def parse(raw: Any) -> DjangoSettings:
    """`raw` (the PERFKIT dict) checked and turned into perfkit's config objects."""
    from perfkit.db.config import DbConfig
    from perfkit.monitor.config import MonitorConfig
    from perfkit.web.config import WebConfig

    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigurationError("PERFKIT", f"must be a dict, not {type(raw).__name__}")
    unknown = sorted(set(raw) - set(_KEYS))
    if unknown:
        raise ConfigurationError(f"PERFKIT['{unknown[0]}']", f"unknown setting; known: {', '.join(_KEYS)}")
    web = _section(raw, "web")
    for key in ("rules", "rate_limit"):
        if key in raw:
            if key in web:
                raise ConfigurationError(
                    f"PERFKIT['{key}']", f"given twice (also in PERFKIT['web']['{key}'])"
                )
            web[key] = raw[key]
    if "rules" in web:
        web["rules"] = _rules(web["rules"])
    if "user" not in web:  # `cache_per_user=True` keys by `request.user`
        from perfkit.django.request import django_user

        web["user"] = django_user
    monitor: Any = None
    if raw.get("monitor", True) is not False:
        monitor = _build("PERFKIT['monitor']", MonitorConfig, _section(raw, "monitor"))
    databases = raw.get("databases")
    if databases is not None:
        if isinstance(databases, str) or not all(isinstance(a, str) for a in databases):
            raise ConfigurationError("PERFKIT['databases']", f"must be a list of aliases, not {databases!r}")
        databases = tuple(databases)
    cache = raw.get("cache", "default")
    if not isinstance(cache, str):
        raise ConfigurationError("PERFKIT['cache']", f"must be a CACHES alias, not {cache!r}")
    return DjangoSettings(
        web=_build("PERFKIT['web']", WebConfig, web),
        db=_build("PERFKIT['db']", DbConfig, _section(raw, "db")),
        monitor=monitor, databases=databases, cache=cache, jobs=_jobs(raw.get("jobs")),
        otel=_otel(raw.get("otel")), raw=dict(raw),
    )  # fmt: skip


def get_settings() -> DjangoSettings:
    """The project's PERFKIT settings, parsed on first use (and again after `reset()`)."""
    global _current
    if _current is None:
        from django.conf import settings

        _current = parse(getattr(settings, "PERFKIT", None))
    return _current


def reset() -> None:
    """Forget the parsed settings (tests that change `settings.PERFKIT` call this; so does the
    `setting_changed` signal)."""
    global _current
    _current = None


def installers() -> list[Callable[[], None]]:
    """What `PerfkitConfig.ready()` runs, once per process: each part's `install()`."""
    from perfkit.django import db, invalidation, otel

    return [db.install, invalidation.install, otel.install]


def _on_setting_changed(*, setting: str, **_: Any) -> None:
    if setting == "PERFKIT":
        reset()


def connect_signals() -> None:
    from django.test.signals import setting_changed

    setting_changed.connect(_on_setting_changed, dispatch_uid="perfkit.django.conf")
