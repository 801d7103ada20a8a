"""Remote sources: off unless configured, then only from an allow-list of hosts, SSRF-checked.

For each request (the first and every redirect, each re-checked from the start; imagor#240 was not):
the scheme is allowed (https only, by default), the host is on the allow-list (exact names, or
`*.example.com`), the name is resolved once and every address it resolves to must pass
`addresses.refusal`; then the connection is made to the checked address itself (the URL's host replaced
by the IP, the name kept in `Host` and TLS SNI, so the certificate is still verified against it): no
second resolution that a rebinding DNS server could answer differently. Environment proxies are
ignored (`trust_env=False`): a proxy would make the connection somewhere else. The body is read up to
the byte cap, and a response over it is cut and refused.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any
from urllib.parse import urljoin, urlsplit

from perfkit.errors import ConfigurationError, MissingDependencyError
from perfkit.images.addresses import IPAddress, IPNetwork, refusal
from perfkit.images.errors import (
    ImageTooLargeError,
    SourceFetchError,
    SourceNotFoundError,
    SourceRefusedError,
)
from perfkit.images.sources import Located

__all__ = ["PREFIX", "RemoteSource", "decode_path", "encode_path"]

PREFIX = "r:"  # an image path naming a remote URL: r:<the URL in unpadded base64url>
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
_REDIRECTS = (301, 302, 303, 307, 308)


def encode_path(url: str) -> str:
    return PREFIX + base64.urlsafe_b64encode(url.encode()).rstrip(b"=").decode()


def decode_path(path: str) -> str:
    text = path[len(PREFIX) :]
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise SourceNotFoundError("no such image: a remote path is r:<base64url of the URL>") from None


async def system_resolver(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to (the system resolver, off the event loop)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class RemoteSource:
    """Images fetched from the allow-listed `hosts` (see the module docstring for the checks).

    `allow_networks` opts in to addresses that are refused by default (an internal image host, or a test
    server on 127.0.0.1: `allow_networks=["127.0.0.1/32"]`); `resolver` replaces the system resolver
    (split-horizon DNS, tests); `verify` is an `ssl.SSLContext` trusting another CA (certificates are
    always checked against the URL's host name). Results of remote images are cached for `ttl` seconds.
    """

    def __init__(
        self,
        hosts: Iterable[str],
        *,
        schemes: Iterable[str] = ("https",),
        allow_networks: Iterable[str] = (),
        resolver: Resolver | None = None,
        timeout: float = 10.0,
        max_redirects: int = 3,
        ttl: float = 86400.0,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self.hosts = frozenset(h.lower().rstrip(".") for h in hosts)
        if not self.hosts:
            raise ConfigurationError("hosts", "a remote source needs an allow-list of hosts")
        self.schemes = frozenset(schemes)
        if not self.schemes <= {"http", "https"}:
            raise ConfigurationError("schemes", "http and/or https")
        try:
            self.allow_networks: tuple[IPNetwork, ...] = tuple(
                ipaddress.ip_network(n, strict=True) for n in allow_networks
            )
        except ValueError as exc:
            raise ConfigurationError("allow_networks", str(exc)) from None
        self.resolver = resolver or system_resolver
        self.timeout = timeout
        self.max_redirects = max_redirects
        self.ttl = ttl
        self.verify = verify

    def version(self, path: str) -> str | None:
        return None

    async def locate(self, path: str, max_bytes: int) -> Located | None:
        if not path.startswith(PREFIX):
            return None
        url = decode_path(path)
        self.check_url(url)  # refused before anything is cached or fetched
        digest = hashlib.sha256(url.encode()).hexdigest()[:32]
        return Located(f"remote/{digest}", None, fetch=lambda: self.fetch(url, max_bytes))

    def check_url(self, url: str) -> tuple[str, str, int]:
        """(scheme, host, port) of `url` when its scheme and host are allowed; else SourceRefusedError."""
        try:
            parts = urlsplit(url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise SourceRefusedError(f"remote source refused: {url[:200]!r} is not a URL") from None
        host = (parts.hostname or "").rstrip(".")
        if parts.scheme not in self.schemes:
            raise SourceRefusedError(f"remote source refused: scheme {parts.scheme!r} is not allowed")
        if parts.username or parts.password:
            raise SourceRefusedError("remote source refused: credentials in the URL")
        if not self._host_allowed(host):
            raise SourceRefusedError(f"remote source refused: host {host!r} is not on the allow-list")
        return parts.scheme, host, port

    def _host_allowed(self, host: str) -> bool:
        if host in self.hosts:
            return True
        return any(p.startswith("*.") and host.endswith(p[1:]) for p in self.hosts)

    async def checked_address(self, host: str, port: int) -> IPAddress:
        """The one address to connect to for `host`: every address it resolves to must be allowed."""
        try:
            literal: IPAddress | None = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            found = [literal]
        else:
            try:
                found = [ipaddress.ip_address(a.split("%")[0]) for a in await self.resolver(host, port)]
            except (OSError, ValueError) as exc:
                raise SourceFetchError(f"remote source: cannot resolve {host!r}: {exc}") from None
        if not found:
            raise SourceFetchError(f"remote source: {host!r} resolves to no address")
        for address in found:
            reason = refusal(address, self.allow_networks)
            if reason:
                raise SourceRefusedError(f"remote source refused: {host!r} resolves to {reason}")
        return found[0]

    async def fetch(self, url: str, max_bytes: int) -> bytes:
        """The body at `url`, following at most `max_redirects` redirects, each one checked again."""
        try:
            import httpx
        except ImportError as exc:  # pragma: no cover  # httpx is in the images extra
            raise MissingDependencyError("RemoteSource", "httpx", "images") from exc
        try:
            async with (
                asyncio.timeout(self.timeout),  # the whole fetch: a server trickling bytes gets no longer
                httpx.AsyncClient(
                    trust_env=False, follow_redirects=False, timeout=self.timeout, verify=self.verify
                ) as client,
            ):
                for _ in range(self.max_redirects + 1):
                    location = await self._one(client, url, max_bytes)
                    if isinstance(location, bytes):
                        return location
                    url = urljoin(url, location)
        except TimeoutError:
            raise SourceFetchError(f"remote source timed out after {self.timeout:g} s") from None
        raise SourceFetchError(f"remote source: more than {self.max_redirects} redirects")

    async def _one(self, client: Any, url: str, max_bytes: int) -> bytes | str:
        import httpx

        scheme, host, port = self.check_url(url)
        address = await self.checked_address(host, port)
        target = httpx.URL(url).copy_with(host=str(address))
        default = 443 if scheme == "https" else 80
        headers = {
            "host": host if port == default else f"{host}:{port}",
            "accept": "image/*",
            "accept-encoding": "identity",
        }
        extensions = {"sni_hostname": host} if scheme == "https" else {}
        try:
            async with client.stream("GET", target, headers=headers, extensions=extensions) as response:
                if response.status_code in _REDIRECTS:
                    location = response.headers.get("location")
                    if not location:
                        raise SourceFetchError(f"remote source: {response.status_code} without a Location")
                    return str(location)
                if response.status_code != 200:
                    raise SourceFetchError(f"remote source answered {response.status_code}")
                declared = response.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > max_bytes:
                    raise ImageTooLargeError(
                        f"remote source is {declared} bytes, over the cap of {max_bytes}"
                    )
                body = bytearray()
                async for chunk in response.aiter_raw():
                    body += chunk
                    if len(body) > max_bytes:
                        raise ImageTooLargeError(f"remote source is over the cap of {max_bytes} bytes")
                return bytes(body)
        except httpx.TimeoutException:
            raise SourceFetchError(f"remote source timed out after {self.timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise SourceFetchError(f"remote source failed: {type(exc).__name__}: {exc}") from None
