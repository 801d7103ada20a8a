"""`HubConfig`: the hub's settings, resolved once by `HubConfig.resolve(**given)`: an explicit value,
else `PERFKIT_REALTIME_<NAME>`, else the default; each checked with an error that names it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from perfkit.config import parse_choice, parse_duration, parse_int, parse_size, parse_str, setting
from perfkit.errors import ConfigurationError
from perfkit.web.config import RateLimit

SLOW_POLICIES = ("drop-oldest", "disconnect")
KEY_PREFIX = "perfkit:rt:"
DEFAULT_RATE = RateLimit(20, 1.0)


@dataclass(frozen=True)
class HubConfig:
    """What every connection of one hub obeys (durations in seconds, sizes in bytes)."""

    history_size: int = 1500  # messages kept per channel
    history_ttl: float = 10.0  # age after which a message leaves the history
    meta_ttl: float = 86400.0  # a channel's epoch survives this long without a publish
    batch_window: float = 0.025  # at most one frame per window per connection; 0 = each message at once
    queue_size: int = 2000  # messages waiting per connection before `slow_policy` applies
    slow_policy: str = "drop-oldest"  # or "disconnect" (close 4409)
    send_timeout: float = 5.0  # every send, heartbeats included
    heartbeat: float = 15.0  # seconds between pings
    heartbeat_timeout: float = 35.0  # client silence before closing 4408 (default 2 x heartbeat + 5)
    max_message: int = 65536  # bytes of one client frame
    rate_limit: RateLimit = DEFAULT_RATE  # client frames per connection
    max_channels: int = 100  # subscriptions per connection
    latest: tuple[str, ...] = ()  # latest-value channel patterns ("presence:*")
    prefix: str = KEY_PREFIX  # Redis key and pub/sub prefix

    @classmethod
    def resolve(cls, **given: Any) -> HubConfig:
        """The config from explicit settings (None = not given), the environment and the defaults."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(given) - known)
        if unknown:
            raise ConfigurationError(unknown[0], f"is not a hub setting; the settings are {sorted(known)}")
        values: dict[str, Any] = {}
        for name, parse in _PARSERS.items():
            raw = given.get(name)
            explicit = None if raw is None else parse(name, raw)
            default = getattr(cls, name) if name != "heartbeat_timeout" else None
            values[name] = setting(f"realtime_{name}", explicit, default, parse)
        if values["heartbeat_timeout"] is None:
            values["heartbeat_timeout"] = 2 * values["heartbeat"] + 5
        if values["slow_policy"] not in SLOW_POLICIES:
            raise ConfigurationError(
                "slow_policy", f"{values['slow_policy']!r} is not one of {SLOW_POLICIES}"
            )
        values["latest"] = _patterns(given.get("latest", ()))
        values["prefix"] = setting("realtime_prefix", given.get("prefix"), KEY_PREFIX, parse_str)
        return cls(**values)

    def is_latest(self, channel: str) -> bool:
        """True for a latest-value channel (only its newest waiting message is sent)."""
        return any(fnmatchcase(channel, p) for p in self.latest)


def broker_url(raw: Any) -> str:
    """The hub's URL as the brokers read it: a cluster URL may list its nodes in the authority
    (`redis+cluster://h1:7000,h2:7001`), which becomes the first node plus `?nodes=h2:7001`."""
    if not isinstance(raw, str) or "://" not in raw:
        raise ConfigurationError("url", f"{raw!r} is not a hub URL such as 'redis://127.0.0.1:6379/0'")
    parts = urlsplit(raw)
    if not parts.scheme.lower().endswith("+cluster") or "," not in parts.netloc:
        return raw
    userinfo, _, hosts = parts.netloc.rpartition("@")
    first, *more = [h.strip() for h in hosts.split(",")]
    for name in [first, *more]:
        host, _, port = name.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigurationError("url", f"{_redacted(parts)!r}: {name!r} is not host:port")
    query = parse_qsl(parts.query, keep_blank_values=True)
    listed = [v for k, v in query if k == "nodes"]
    nodes = ",".join([*more, *listed])
    query = [(k, v) for k, v in query if k != "nodes"] + [("nodes", nodes)]
    netloc = f"{userinfo}@{first}" if userinfo else first
    return str(urlunsplit(parts._replace(netloc=netloc, query=urlencode(query, safe=":,"))))


def _redacted(parts: Any) -> str:
    netloc = parts.netloc.rpartition("@")[2]
    return str(urlunsplit(parts._replace(netloc=netloc, query="")))


def _positive(name: str, raw: Any) -> float:
    value = parse_duration(name, raw)
    if value <= 0:
        raise ConfigurationError(name, f"{raw!r} must be more than 0 seconds")
    return value


def _count(name: str, raw: Any) -> int:
    return parse_int(name, raw, minimum=1)


def _bytes(name: str, raw: Any) -> int:
    value = parse_size(name, raw)
    if value < 1:
        raise ConfigurationError(name, f"{raw!r} must be at least 1 byte")
    return value


def _rate(name: str, raw: Any) -> RateLimit:
    if isinstance(raw, RateLimit):
        return raw
    if not isinstance(raw, str):
        raise ConfigurationError(name, f"{raw!r} is not a rate; use e.g. '20/second'")
    return RateLimit.parse(raw, name)


def _policy(name: str, raw: Any) -> str:
    return parse_choice(name, str(raw), SLOW_POLICIES)


def _patterns(raw: Any) -> tuple[str, ...]:
    if (
        isinstance(raw, str)
        or not isinstance(raw, Sequence)
        or not all(isinstance(p, str) and p for p in raw)
    ):
        raise ConfigurationError("latest", f"{raw!r} is not a sequence of channel patterns")
    return tuple(raw)


_PARSERS: dict[str, Callable[[str, Any], Any]] = {
    "history_size": _count,
    "history_ttl": _positive,
    "meta_ttl": _positive,
    "batch_window": parse_duration,
    "queue_size": _count,
    "slow_policy": _policy,
    "send_timeout": _positive,
    "heartbeat": _positive,
    "heartbeat_timeout": _positive,
    "max_message": _bytes,
    "rate_limit": _rate,
    "max_channels": _count,
}
