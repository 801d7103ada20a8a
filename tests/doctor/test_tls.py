"""Doctor over HTTPS for real: uvicorn with a certificate of our own CA, HSTS sent or not."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from perfkit.doctor import diagnose
from perfkit.doctor.serve import free_port

from . import apps

HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")


def certificate(folder: Path, days: int) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 valid `days` days (openssl), and its key."""
    cert, key = folder / f"cert{days}.pem", folder / f"key{days}.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", str(days), "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


def with_hsts(app: Any) -> Any:
    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        async def sending(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), HSTS]}
            await send(message)

        await app(scope, receive, sending if scope["type"] == "http" else send)

    return wrapped


@asynccontextmanager
async def https(app: Any, cert: Path, key: Path) -> AsyncIterator[str]:
    import asyncio

    import uvicorn

    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", ssl_certfile=str(cert), ssl_keyfile=str(key)
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(20):
        while not server.started:
            assert not task.done(), task
            await asyncio.sleep(0.02)
    try:
        yield f"https://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[int, tuple[Path, Path]]:
    """Two certificates for 127.0.0.1: 90 days left and 7 days left."""
    folder = tmp_path_factory.mktemp("tls")
    return {days: certificate(folder, days) for days in (90, 7)}


async def test_https_with_hsts_and_a_valid_certificate_passes(certs: dict[int, tuple[Path, Path]]) -> None:
    """A certificate the CA bundle trusts, 90 days left, and HSTS for a year: both checks pass."""
    cert, key = certs[90]
    async with https(with_hsts(apps.bare), cert, key) as url:
        by_id = {r.id: r for r in (await diagnose(url, verify=str(cert))).results}
    assert by_id["tls"].status == "pass" and "days left" in by_id["tls"].detail
    assert by_id["hsts"].status == "pass"


async def test_https_without_hsts_fails_and_a_near_expiry_warns(certs: dict[int, tuple[Path, Path]]) -> None:
    """No Strict-Transport-Security fails with the header to send; 7 days left on the certificate warns."""
    cert, key = certs[7]
    async with https(apps.bare, cert, key) as url:
        by_id = {r.id: r for r in (await diagnose(url, verify=str(cert))).results}
    assert by_id["hsts"].status == "fail" and "Strict-Transport-Security: max-age=" in by_id["hsts"].fix
    assert by_id["tls"].status == "warn" and "expires in" in by_id["tls"].detail


async def test_an_untrusted_certificate_fails_tls(certs: dict[int, tuple[Path, Path]]) -> None:
    """Without the CA bundle the handshake fails: the TLS check fails and says why."""
    cert, key = certs[90]
    async with https(apps.bare, cert, key) as url:
        by_id = {r.id: r for r in (await diagnose(url)).results}
    assert by_id["tls"].status == "fail" and "CERTIFICATE_VERIFY_FAILED" in by_id["tls"].detail
