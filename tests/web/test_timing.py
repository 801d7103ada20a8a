"""Timing middleware: Server-Timing, X-Request-ID, slow-request log."""

from __future__ import annotations

import logging
import re

import pytest
from starlette.testclient import TestClient

import perfkit
from perfkit.errors import ConfigurationError
from perfkit.metrics import Collector
from perfkit.web import TimingMiddleware, WebConfig

from .conftest import make_starlette

pytestmark = pytest.mark.usefixtures("framework")


def client(config: WebConfig | None = None, collector: Collector | None = None) -> TestClient:
    app = make_starlette()
    app.add_middleware(TimingMiddleware, config=config or WebConfig(), collector=collector or Collector())
    return TestClient(app)


def test_server_timing_has_total_app_db_cache() -> None:
    """Every response carries Server-Timing with total, app, db (with query count) and cache."""
    response = client().get("/")
    value = response.headers["server-timing"]
    for metric in ("total;dur=", "app;dur=", "db;dur=", 'desc="0 queries"', "cache;dur="):
        assert metric in value


def test_server_timing_without_db_or_cache_keeps_its_format() -> None:
    """A request with no SQL and no cache time gets the same Server-Timing shape, with app = total."""
    value = client().get("/").headers["server-timing"]
    match = re.fullmatch(
        r'total;dur=(\d+\.\d\d), app;dur=(\d+\.\d\d), db;dur=0\.00;desc="0 queries", cache;dur=0\.000', value
    )
    assert match is not None, value
    assert match.group(1) == match.group(2)


def test_request_id_generated_when_missing() -> None:
    """A request without an id gets a fresh X-Request-ID (process prefix + counter), different per request."""
    c = client()
    first, second = c.get("/").headers["x-request-id"], c.get("/").headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{12}-[0-9a-f]+", first)
    assert first != second


def test_request_id_honoured() -> None:
    """A well-formed client X-Request-ID is echoed back unchanged."""
    response = client().get("/", headers={"X-Request-ID": "abc-123.def:9"})
    assert response.headers["x-request-id"] == "abc-123.def:9"


@pytest.mark.parametrize("bad", ["x" * 500, "has space", "semi;colon", "é"])
def test_malformed_request_id_replaced(bad: str) -> None:
    """An overlong or unsafe X-Request-ID is replaced by a generated one, never echoed."""
    response = client().get("/", headers={"X-Request-ID": bad.encode("utf-8")})
    assert response.status_code == 200
    assert re.fullmatch(r"[0-9a-f]{12}-[0-9a-f]+", response.headers["x-request-id"])


def test_slow_request_logged_and_recorded(caplog: pytest.LogCaptureFixture) -> None:
    """A request over the threshold logs one structured line and lands in the slow_request ring."""
    collector = Collector()
    with caplog.at_level(logging.WARNING, logger="perfkit.web"):
        client(WebConfig(slow_request=1e-9), collector).get("/items/7")
    [finding] = collector.findings("slow_request")
    assert finding["route"] == "/items/{item_id}"
    assert finding["status"] == 200
    assert any(
        "slow request" in r.getMessage() and "route=/items/{item_id}" in r.getMessage()
        for r in caplog.records
    )


def test_fast_request_not_logged() -> None:
    """Requests under the threshold record nothing."""
    collector = Collector()
    client(WebConfig(slow_request=60), collector).get("/")
    assert collector.findings("slow_request") == []


def test_websocket_passes_through() -> None:
    """A websocket scope goes through the timing layer untouched."""
    with client().websocket_connect("/ws") as ws:
        ws.send_text("there")
        assert ws.receive_text() == "hi there"


async def asgi_request(app: object, headers: list[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    """One GET through `app` with exactly these raw ASGI scope headers; returns the response headers."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
             "scheme": "http", "path": "/", "raw_path": b"/", "query_string": b"", "root_path": "",
             "headers": headers, "client": ("127.0.0.1", 1), "server": ("t", 80)}  # fmt: skip
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    await app(scope, receive, send)  # type: ignore[operator]
    start = next(m for m in sent if m["type"] == "http.response.start")
    sent_headers: list[tuple[bytes, bytes]] = start["headers"]  # type: ignore[assignment]
    return dict(sent_headers)


@pytest.mark.parametrize("bad", [b"abc\n", b"abc\r\n", b"\nabc", b"abc\nx", b"abc\x00"])
async def test_request_id_with_newline_in_raw_scope_replaced(bad: bytes) -> None:
    """A raw scope X-Request-ID with a (trailing) newline or NUL is never echoed: a new id is made."""
    app = TimingMiddleware(make_starlette(), config=WebConfig(), collector=Collector())
    sent = (await asgi_request(app, [(b"x-request-id", bad)]))[b"x-request-id"]
    assert re.fullmatch(rb"[0-9a-f]{12}-[0-9a-f]+", sent), sent
    assert (await asgi_request(app, [(b"x-request-id", b"abc")]))[b"x-request-id"] == b"abc"


def test_timing_allow_origin_off_by_default() -> None:
    """Without the setting, Server-Timing is sent but no Timing-Allow-Origin: other origins cannot read it."""
    response = client().get("/", headers={"origin": "https://app.example.com"})
    assert "server-timing" in response.headers
    assert "timing-allow-origin" not in response.headers


@pytest.mark.parametrize(
    ("value", "header"),
    [
        ("*", "*"),
        ("https://app.example.com", "https://app.example.com"),
        (["https://a.example", "http://localhost:3000"], "https://a.example, http://localhost:3000"),
        ("https://a.example, http://[::1]:8080", "https://a.example, http://[::1]:8080"),
    ],
)
def test_timing_allow_origin_sent_with_server_timing(value: str | list[str], header: str) -> None:
    """With `timing_allow_origin`, every response carrying Server-Timing also carries Timing-Allow-Origin."""
    for c in (client(WebConfig(timing_allow_origin=value)),
              TestClient(perfkit.instrument(make_starlette(), config=WebConfig(timing_allow_origin=value),
                                            collector=Collector(), monitor=False))):  # fmt: skip
        for path in ("/", "/items/3", "/nowhere"):
            response = c.get(path)
            assert "server-timing" in response.headers
            assert response.headers["timing-allow-origin"] == header


def test_timing_allow_origin_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """PERFKIT_TIMING_ALLOW_ORIGIN sets it when the argument is not given."""
    monkeypatch.setenv("PERFKIT_TIMING_ALLOW_ORIGIN", "https://a.example,https://b.example")
    assert client().get("/").headers["timing-allow-origin"] == "https://a.example, https://b.example"


def test_no_timing_allow_origin_without_server_timing() -> None:
    """With Server-Timing off there is nothing to allow: no Timing-Allow-Origin either."""
    response = client(WebConfig(server_timing=False, timing_allow_origin="*")).get("/")
    assert "server-timing" not in response.headers
    assert "timing-allow-origin" not in response.headers


@pytest.mark.parametrize(
    "bad",
    [
        "https://a.example/",
        "https://a.example/path",
        "a.example",
        "*, https://a.example",
        "https://a.example\r\nx: y",
        ["https://a.example", 3],
    ],
)
def test_bad_timing_allow_origin_refused(bad: object) -> None:
    """A value that is not '*' or a list of scheme://host[:port] origins raises, naming the setting."""
    with pytest.raises(ConfigurationError, match="timing_allow_origin"):
        WebConfig(timing_allow_origin=bad)  # type: ignore[arg-type]
