"""What `perfkit bench` points at: a URL turned into pre-encoded request bytes, and the loopback guard.

A load test aimed at someone else's server is an attack, so only loopback addresses are allowed
unless the user passes `--allow-remote`; every address the host name resolves to must be loopback.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from perfkit.errors import ConfigurationError
from perfkit.redaction import redact

USER_AGENT = "perfkit-bench"


@dataclass(frozen=True)
class Endpoint:
    """Scheme-less host and port of an HTTP/1.1 server, plus the Host header value."""

    host: str
    port: int
    host_header: str


@dataclass(frozen=True)
class Target:
    """A URL target: one request repeated; `name` is how its metrics are reported."""

    endpoint: Endpoint
    method: str = "GET"
    path: str = "/"
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    name: str = ""
    raw: bytes = field(default=b"", repr=False)


def parse_endpoint(url: str, setting: str = "target") -> tuple[Endpoint, str]:
    """(endpoint, path with query) from an http:// URL; https is refused (the client is plain TCP)."""
    parts = urlsplit(url)
    if parts.scheme != "http":
        raise ConfigurationError(setting, f"{url!r}: only http:// URLs are supported (got {parts.scheme!r})")
    if not parts.hostname:
        raise ConfigurationError(setting, f"{url!r} has no host")
    try:
        port = parts.port or 80
    except ValueError as exc:
        raise ConfigurationError(setting, f"{url!r}: {exc}") from None
    host_header = parts.netloc.rsplit("@", 1)[-1]
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Endpoint(parts.hostname, port, host_header), path


def encode_request(
    endpoint: Endpoint, method: str, path: str, headers: tuple[tuple[str, str], ...] = (), body: bytes = b""
) -> bytes:
    """The exact bytes of one HTTP/1.1 keep-alive request."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {endpoint.host_header}"]
    names = {k.lower() for k, _ in headers}
    if "user-agent" not in names:
        lines.append(f"User-Agent: {USER_AGENT}")
    lines.extend(f"{k}: {v}" for k, v in headers)
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def make_target(
    url: str,
    method: str = "GET",
    headers: list[str] | None = None,
    body: bytes = b"",
    name: str | None = None,
) -> Target:
    """Build a URL target; headers are 'Name: value' strings."""
    endpoint, path = parse_endpoint(url)
    pairs: list[tuple[str, str]] = []
    for h in headers or []:
        key, sep, value = h.partition(":")
        if not sep or not key.strip():
            raise ConfigurationError("--header", f"{h!r} is not 'Name: value'")
        pairs.append((key.strip(), value.strip()))
    method = method.upper()
    raw = encode_request(endpoint, method, path, tuple(pairs), body)
    label = name or redact(f"{method} {path}")  # a default name shows no ?token= (reports, summary)
    return Target(endpoint, method, path, tuple(pairs), body, label, raw)


def check_loopback(host: str, allow_remote: bool) -> None:
    """Refuse any host that resolves to a non-loopback address, unless remote targets are allowed."""
    if allow_remote:
        return
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise ConfigurationError("target", f"cannot resolve {host!r}: {exc}") from None
    addresses = {str(info[4][0]) for info in infos}
    remote = sorted(a for a in addresses if not ipaddress.ip_address(a.split("%")[0]).is_loopback)
    if remote:
        raise ConfigurationError(
            "target",
            f"{host!r} resolves to non-loopback {', '.join(remote)}; perfkit bench only loads loopback "
            "servers unless you pass --allow-remote (and own the server)",
        )
