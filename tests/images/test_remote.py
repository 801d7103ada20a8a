"""Remote sources: off by default; allow-listed hosts; SSRF checks on every address and every redirect.

The machine has no internet: the image server here listens on 127.0.0.1, which the default policy
refuses (loopback). The success paths opt in explicitly with `allow_networks=["127.0.0.1/32"]`, the
documented allowance for a trusted internal host, and a `resolver` that maps test names to it.
"""

from __future__ import annotations

import ipaddress
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from perfkit.images import ImageService, RemoteSource
from perfkit.images.addresses import refusal
from tests.images.conftest import ServiceFactory, client_for, encoded, opened, photo

JPEG = encoded(photo((640, 480)), "JPEG")
LOOPBACK = ["127.0.0.1/32"]  # the explicit, test-only allowance (never the default)


class _Handler(BaseHTTPRequestHandler):
    seen: list[str] = []
    routes: dict[str, tuple[int, dict[str, str], bytes]] = {}

    def do_GET(self) -> None:
        self.seen.append(f"{self.headers.get('host')} {self.path}")
        status, headers, body = self.routes.get(self.path, (404, {}, b"no"))
        self.send_response(status)
        for k, v in {"content-length": str(len(body)), **headers}.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[int]:
    """An image server on 127.0.0.1; its port."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    port = httpd.server_address[1]
    _Handler.routes = {
        "/a.jpg": (200, {"content-type": "image/jpeg"}, JPEG),
        "/to-metadata": (302, {"location": "http://169.254.169.254/latest/meta-data/"}, b""),
        "/to-private": (302, {"location": "http://internal.test/a.jpg"}, b""),
        "/to-other-host": (301, {"location": "http://evil.test/a.jpg"}, b""),
        "/to-self": (302, {"location": "/a.jpg"}, b""),
        "/loop": (302, {"location": "/loop"}, b""),
        "/big": (200, {"content-length": "999999999"}, b""),
        "/gone": (410, {}, b"gone"),
    }
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield port
    httpd.shutdown()
    httpd.server_close()


TEST_NAMES = {"images.test": ["127.0.0.1"], "internal.test": ["10.0.0.5"], "dual.test": ["127.0.0.1", "::1"]}


async def resolver(host: str, port: int) -> list[str]:
    """The resolver of the test names (the system resolver knows none of them)."""
    return TEST_NAMES[host]


def remote(**options: Any) -> RemoteSource:
    options.setdefault("hosts", ["127.0.0.1", "images.test", "internal.test", "localhost", "dual.test"])
    return RemoteSource(schemes=["http"], **options)


async def get(service: ImageService, url: str) -> Any:
    async with client_for(service) as client:
        return await client.get(service.url(url, w=320))


async def test_remote_is_off_by_default(service: ImageService, server: int) -> None:
    """A service given only folders never fetches a URL: not found, and the server saw nothing."""
    before = len(_Handler.seen)
    response = await get(service, f"http://127.0.0.1:{server}/a.jpg")
    assert response.status_code == 404 and len(_Handler.seen) == before


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("127.0.0.1", "127.0.0.1 is a loopback address"),
        ("localhost", "is a loopback address"),
        ("0.0.0.0", "0.0.0.0 is the unspecified address"),  # noqa: S104  # imgproxy's CVE-2025-24354
        ("[::ffff:127.0.0.1]", "IPv4-mapped 127.0.0.1 is a loopback address"),
    ],
)
async def test_loopback_is_refused_by_default(
    make_service: ServiceFactory, server: int, host: str, reason: str
) -> None:
    """An allow-listed host that is (or resolves to) loopback, 0.0.0.0 or an IPv4-mapped loopback is
    refused before any connection."""
    before = len(_Handler.seen)
    service = make_service(sources=[remote(hosts=[host.strip("[]")])])
    response = await get(service, f"http://{host}:{server}/a.jpg")
    assert response.status_code == 403 and reason in response.json()["error"]
    assert len(_Handler.seen) == before


async def test_a_slow_server_is_cut_at_the_timeout(make_service: ServiceFactory) -> None:
    """A server that accepts and never answers: 502 after the fetch's timeout, nothing left running."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    try:
        port = listener.getsockname()[1]
        service = make_service(sources=[remote(allow_networks=LOOPBACK, timeout=0.3)])
        response = await get(service, f"http://127.0.0.1:{port}/slow.jpg")
        assert response.status_code == 502 and "timed out" in response.json()["error"]
        assert service.pool.admitted == 0
    finally:
        listener.close()


async def test_allowed_network_fetches_the_image(make_service: ServiceFactory, server: int) -> None:
    """With the explicit opt-in for 127.0.0.1, the remote image is fetched, processed and cached."""
    service = make_service(sources=[remote(allow_networks=LOOPBACK)])
    response = await get(service, f"http://127.0.0.1:{server}/a.jpg")
    assert opened(response).size == (320, 240)
    assert response.headers["cache-control"] == "public, max-age=3600"  # no version pinned in the URL
    await get(service, f"http://127.0.0.1:{server}/a.jpg")
    assert service.stats().rendered == 1


async def test_connection_goes_to_the_checked_address(make_service: ServiceFactory, server: int) -> None:
    """A name the system cannot resolve, mapped by the resolver to 127.0.0.1: fetched from that address,
    the name kept in Host; no second resolution happened (the system's would have failed)."""
    service = make_service(sources=[remote(allow_networks=LOOPBACK, resolver=resolver)])
    response = await get(service, f"http://images.test:{server}/a.jpg")
    assert response.status_code == 200
    assert _Handler.seen[-1] == f"images.test:{server} /a.jpg"


async def test_every_resolved_address_must_pass(make_service: ServiceFactory, server: int) -> None:
    """A name resolving to an allowed and a refused address (127.0.0.1 and ::1) is refused."""
    service = make_service(sources=[remote(allow_networks=LOOPBACK, resolver=resolver)])
    response = await get(service, f"http://dual.test:{server}/a.jpg")
    assert response.status_code == 403 and "::1 is a loopback address" in response.json()["error"]


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/to-metadata", "host '169.254.169.254' is not on the allow-list"),
        ("/to-other-host", "host 'evil.test' is not on the allow-list"),
        ("/to-private", "10.0.0.5 is a private address"),
    ],
)
async def test_every_redirect_is_checked_again(
    make_service: ServiceFactory, server: int, path: str, reason: str
) -> None:
    """A redirect from an allowed source to another host, or to a refused address, is refused."""
    service = make_service(sources=[remote(allow_networks=LOOPBACK, resolver=resolver)])
    response = await get(service, f"http://127.0.0.1:{server}{path}")
    assert response.status_code == 403 and reason in response.json()["error"]


async def test_redirects_are_followed_and_bounded(make_service: ServiceFactory, server: int) -> None:
    """A relative redirect to an allowed address is followed; a redirect loop ends with 502."""
    service = make_service(sources=[remote(allow_networks=LOOPBACK)])
    assert (await get(service, f"http://127.0.0.1:{server}/to-self")).status_code == 200
    looped = await get(service, f"http://127.0.0.1:{server}/loop")
    assert looped.status_code == 502 and "more than 3 redirects" in looped.json()["error"]


async def test_remote_errors_are_clear(make_service: ServiceFactory, server: int) -> None:
    """Over the byte cap (by Content-Length): 413; a non-200 answer: 502 naming its status."""
    service = make_service(sources=[remote(allow_networks=LOOPBACK)])
    big = await get(service, f"http://127.0.0.1:{server}/big")
    gone = await get(service, f"http://127.0.0.1:{server}/gone")
    assert big.status_code == 413 and gone.status_code == 502 and "answered 410" in gone.json()["error"]


async def test_https_only_by_default(make_service: ServiceFactory, server: int) -> None:
    """A remote source takes https URLs only unless told otherwise."""
    service = make_service(sources=[RemoteSource(hosts=["127.0.0.1"], allow_networks=LOOPBACK)])
    response = await get(service, f"http://127.0.0.1:{server}/a.jpg")
    assert response.status_code == 403 and "scheme 'http' is not allowed" in response.json()["error"]


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("0.0.0.0", "unspecified"),  # noqa: S104  # an address under test, not a bind
        ("::", "unspecified"),
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "IPv4-mapped 127.0.0.1 is a loopback"),
        ("::ffff:169.254.169.254", "IPv4-mapped 169.254.169.254 is the cloud metadata"),
        ("169.254.169.254", "cloud metadata"),
        ("fd00:ec2::254", "cloud metadata"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("100.64.0.1", "not a public address"),
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "reserved"),
    ],
)
def test_refused_addresses(address: str, reason: str) -> None:
    """Every non-public kind of address is refused, each with its name."""
    found = refusal(ipaddress.ip_address(address))
    assert found is not None and reason in found


def test_public_addresses_pass_and_opt_in_is_per_network() -> None:
    """Public addresses pass; an allowed network lets its own addresses through, never 0.0.0.0."""
    assert refusal(ipaddress.ip_address("93.184.216.34")) is None
    assert refusal(ipaddress.ip_address("2606:2800:220:1::1")) is None
    allow = [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("0.0.0.0/0")]
    assert refusal(ipaddress.ip_address("127.0.0.2"), allow) is None
    assert "unspecified" in (refusal(ipaddress.ip_address("0.0.0.0"), allow) or "")  # noqa: S104


def _certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a certificate it signed for images.test: (ca.pem, cert.pem, key.pem)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def build(subject: str, issuer: x509.Name | None, key: Any, signer: Any, ca: bool) -> x509.Certificate:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer or name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = build("perfkit test CA", None, ca_key, ca_key, True)
    leaf = build("images.test", ca.subject, leaf_key, ca_key, False)
    paths = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, ssl.SSLContext]]:
    """An https image server on 127.0.0.1 with a certificate for images.test; (port, client context)."""
    ca, cert, key = _certificates(tmp_path_factory.mktemp("tls"))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    httpd.socket = server_context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1], ssl.create_default_context(cafile=str(ca))
    httpd.shutdown()
    httpd.server_close()


async def test_https_connects_to_the_checked_address_and_verifies_the_name(
    make_service: ServiceFactory, tls_server: tuple[int, ssl.SSLContext], server: int
) -> None:
    """https://images.test (resolved by the checked resolver to 127.0.0.1): the TLS connection goes to
    that address with the name as SNI, and the certificate is verified against the name; another name
    that resolves to the same address fails verification (502)."""
    del server  # its fixture set up the handler's routes, which the TLS server shares
    port, trust = tls_server
    names = {"images.test": ["127.0.0.1"], "wrong.test": ["127.0.0.1"]}

    async def resolve(host: str, _port: int) -> list[str]:
        return names[host]

    source = RemoteSource(hosts=["images.test", "wrong.test"], allow_networks=LOOPBACK, resolver=resolve,
                          verify=trust)  # fmt: skip
    service = make_service(sources=[source])
    good = await get(service, f"https://images.test:{port}/a.jpg")
    assert opened(good).size == (320, 240) and _Handler.seen[-1] == f"images.test:{port} /a.jpg"
    wrong = await get(service, f"https://wrong.test:{port}/a.jpg")
    assert wrong.status_code == 502 and "CERTIFICATE_VERIFY_FAILED" in wrong.json()["error"]
