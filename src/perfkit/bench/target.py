"""What `perfkit bench` points at: a URL turned into pre-encoded request bytes, and the loopback guard.

A load test aimed at someone else's server is an attack, so only loopback addresses are allowed
unless the user passes `--allow-remote`; every address the host name resolves to must be loopback.
"""

from __future__ import annotations

import ipaddress
import re
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


_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")  # RFC 9110 token: a method or a header name
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # control characters other than HTAB
_BAD_TARGET = re.compile(r"[\x00-\x20\x7f]")  # a request target has no spaces or control characters


def check_token(setting: str, value: str, what: str) -> None:
    """A method or header name must be an RFC 9110 token (no spaces, CR/LF, colons...)."""
    if not _TOKEN.match(value):
        raise ConfigurationError(
            setting, f"{value!r} is not a valid HTTP {what} (letters, digits, !#$%&'*+-.^_`|~)"
        )


def check_header_value(setting: str, name: str, value: str) -> None:
    """A header value must not contain CR, LF or other control characters (request splitting)."""
    if _CONTROL.search(value):
        raise ConfigurationError(
            setting, f"header {name!r}: the value contains CR, LF or another control character"
        )


def parse_endpoint(url: str, setting: str = "target") -> tuple[Endpoint, str]:
    """(endpoint, path with query) from an http:// URL; https is refused (the client is plain TCP)."""
    if _CONTROL.search(url) or "\t" in url:
        raise ConfigurationError(setting, f"{url!r} contains a control character (CR, LF, tab...)")
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # e.g. "http://[::1": an unclosed IPv6 bracket
        raise ConfigurationError(setting, f"{url!r} is not a valid URL: {exc}") from None
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
    if _BAD_TARGET.search(path) or _BAD_TARGET.search(host_header):
        raise ConfigurationError(setting, f"{url!r}: the host and path must not contain spaces")
    return Endpoint(parts.hostname, port, host_header), path


def encode_request(
    endpoint: Endpoint, method: str, path: str, headers: tuple[tuple[str, str], ...] = (), body: bytes = b""
) -> bytes:
    """The exact bytes of one HTTP/1.1 keep-alive request; a method, path or header that would split
    the request (spaces, CR/LF) raises ConfigurationError."""
    check_token("method", method, "method")
    if not path or _BAD_TARGET.search(path):
        raise ConfigurationError(
            "path", f"{path!r}: a request path must not be empty or contain spaces or CR/LF"
        )
    for key, value in headers:
        check_token("header", key, "header name")
        check_header_value("header", key, value)
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
        check_token("--header", key.strip(), "header name")
        check_header_value("--header", key.strip(), value.strip(" \t"))
        pairs.append((key.strip(), value.strip(" \t")))
    method = method.upper()
    check_token("--method", method, "method")
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
