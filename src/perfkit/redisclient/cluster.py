"""Redis Cluster URLs: `redis+cluster://host:port?nodes=host:port,…` (`rediss+cluster://` for TLS).

The URL names one node to learn the cluster from; `?nodes=` adds more, for a start while that one is
down. These helpers read such a URL; `perfkit.redisclient.clients` builds the client from it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from perfkit.backends import BackendURL, parse_url
from perfkit.errors import ConfigurationError


def is_cluster(url: BackendURL) -> bool:
    """True for a `redis+cluster://` or `rediss+cluster://` URL."""
    return url.scheme.endswith("+cluster")


def driver_scheme(url: BackendURL) -> str:
    """`redis` or `rediss`, the scheme redis-py understands, for a `redis+cluster`-style URL."""
    return url.scheme.split("+", 1)[0]


def node_url(url: BackendURL, name: str) -> BackendURL:
    """The plain `redis://` URL of one node (`host:port`) with the cluster URL's credentials."""
    parts = urlsplit(url.raw)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@{name}" if userinfo else name
    return parse_url(urlunsplit((driver_scheme(url), netloc, "", "", "")))


def seed_names(url: BackendURL) -> list[str]:
    """`host:port` of the URL's node and of its `?nodes=` list."""
    extra = [n.strip() for n in url.options.get("nodes", "").split(",") if n.strip()]
    for name in extra:
        host, _, port = name.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigurationError("url", f"nodes= wants host:port items, got {name!r}")
    return [f"{url.host}:{url.port or 6379}", *extra]


def primaries(reply: Any) -> list[str]:
    """`host:port` of the healthy primaries in a CLUSTER NODES reply (text, or redis-py's dict)."""
    if isinstance(reply, dict):
        flags = {name: str(info.get("flags", "")) for name, info in reply.items()}
    else:
        text = reply.decode() if isinstance(reply, bytes) else str(reply)
        rows = [line.split() for line in text.splitlines() if line.strip()]
        flags = {row[1].split("@", 1)[0]: row[2] for row in rows}
    return sorted(
        name for name, f in flags.items() if "master" in f and "fail" not in f and "noaddr" not in f
    )
