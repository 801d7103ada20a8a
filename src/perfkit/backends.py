"""Backends chosen by URL scheme, through one small registry per kind (cache, jobs, rate limits).

A registry maps a scheme to a dotted path and the optional extra that provides its driver. Nothing is
imported until a URL asks for it, so `import perfkit` stays cheap and a missing driver fails at first
use with the `pip install 'perfkit[extra]'` line instead of at import time.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import parse_qsl, urlsplit

from perfkit.errors import ConfigurationError, MissingDependencyError
from perfkit.redaction import redact

T = TypeVar("T")


@dataclass(frozen=True)
class BackendURL:
    """A parsed backend URL; `options` are its query parameters (`memory://?max_size=100`)."""

    raw: str
    scheme: str
    host: str | None
    port: int | None
    path: str
    options: dict[str, str] = field(default_factory=dict)

    def redacted(self) -> str:
        """The URL with every credential replaced (see `redact`), fit for logs and error messages."""
        return redact(self.raw)


def parse_url(raw: str, setting: str = "url") -> BackendURL:
    if not isinstance(raw, str) or "://" not in raw:
        raise ConfigurationError(setting, f"{raw!r} is not a backend URL such as 'redis://127.0.0.1:6379/0'")
    parts = urlsplit(raw)
    try:
        port = parts.port
    except ValueError:
        raise ConfigurationError(setting, f"{raw!r} has an invalid port") from None
    return BackendURL(
        raw=raw,
        scheme=parts.scheme.lower(),
        host=parts.hostname,
        port=port,
        path=parts.path,
        options=dict(parse_qsl(parts.query, keep_blank_values=True)),
    )


@dataclass(frozen=True)
class _Entry:
    target: str  # "package.module:factory"
    extra: str | None  # the perfkit extra that installs the driver, or None for built-ins


class Registry(Generic[T]):
    """Maps URL schemes to backend factories; `create(url)` builds one."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, _Entry] = {}

    def register(self, scheme: str, target: str, *, extra: str | None = None) -> None:
        self._entries[scheme.lower()] = _Entry(target, extra)

    @property
    def schemes(self) -> list[str]:
        return sorted(self._entries)

    def factory(self, url: BackendURL, setting: str = "url") -> Callable[..., T]:
        entry = self._entries.get(url.scheme)
        if entry is None:
            raise ConfigurationError(
                setting,
                f"unknown {self.kind} backend scheme {url.scheme!r} in {url.redacted()!r}; "
                f"accepted schemes: {', '.join(self.schemes)}",
            )
        module_name, _, attr = entry.target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            missing = exc.name or ""
            if entry.extra is None or missing == "perfkit" or missing.startswith("perfkit."):
                raise
            raise MissingDependencyError(setting, exc.name or module_name, entry.extra) from exc
        factory: Callable[..., T] = getattr(module, attr)
        return factory

    def create(self, raw_url: str, setting: str = "url", **kwargs: Any) -> T:
        url = parse_url(raw_url, setting)
        return self.factory(url, setting)(url, **kwargs)
