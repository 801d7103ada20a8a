"""Bad and hostile headers get sane answers through the full stack, never a 500."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

import perfkit
from perfkit.metrics import Collector
from perfkit.web import Rule, WebConfig

from .conftest import make_starlette

pytestmark = pytest.mark.usefixtures("framework")

BAD = [
    ("accept-encoding", b"gzip;q=NaN, br;q=-1, zstd;q=1e999, ;;;, \xff\xfe"),
    ("accept-encoding", b"*;q=0"),
    ("accept-encoding", b"gzip, " * 2000),
    ("if-none-match", b'W/"' + b"a" * 8000),
    ("if-none-match", b'"a", ' * 3000),
    ("if-modified-since", b"\x00\x01garbage"),
    ("x-request-id", b"\r\nSet-Cookie: evil=1"[2:]),
    ("x-request-id", b"z" * 8000),
    ("cache-control", b'max-age=-1, no-cache="\xff"'),
    ("x-huge", b"h" * 60000),
]


@pytest.fixture
def client() -> TestClient:
    config = WebConfig(
        rules=[Rule(path="/items", cache_control="public, max-age=5")], rate_limit="10000/minute"
    )
    return TestClient(perfkit.instrument(make_starlette(), config=config, collector=Collector()))


@pytest.mark.parametrize(("name", "value"), BAD, ids=[f"{n}-{i}" for i, (n, _) in enumerate(BAD)])
@pytest.mark.parametrize("path", ["/items", "/", "/stream"])
def test_bad_header_never_500(client: TestClient, name: str, value: bytes, path: str) -> None:
    """Malformed or huge header values give a normal 200 with a body."""
    response = client.get(path, headers={name: value})
    assert response.status_code == 200
    assert response.content


def test_no_header_injection_through_request_id(client: TestClient) -> None:
    """A request id with separators is not echoed (so it cannot smuggle a header)."""
    response = client.get("/", headers={"x-request-id": b"ok\x7fid"})
    assert "ok" not in response.headers["x-request-id"]
