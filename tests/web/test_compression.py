"""Compression: negotiation, codings, skips, Vary, ETag suffix."""

from __future__ import annotations

import gzip
import json
import random
import zlib
from pathlib import Path

import brotli
import pytest
import zstandard
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

import perfkit
from perfkit.metrics import Collector
from perfkit.web import CompressionMiddleware, ConditionalMiddleware, Rule, WebConfig
from perfkit.web.compression import negotiate

from .conftest import PAYLOAD, make_starlette

pytestmark = pytest.mark.usefixtures("framework")


def client(config: WebConfig | None = None, etag: bool = False) -> TestClient:
    app = make_starlette()
    cfg = config or WebConfig()
    if etag:
        app.add_middleware(ConditionalMiddleware, config=cfg)
    app.add_middleware(CompressionMiddleware, config=cfg)
    return TestClient(app)


def raw(c: TestClient, path: str, accept: str | bytes) -> tuple[int, dict[str, str], bytes]:
    with c.stream("GET", path, headers={"accept-encoding": accept}) as response:
        body = b"".join(response.iter_raw())
        return response.status_code, dict(response.headers), body


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("gzip", "gzip"),
        ("gzip, br", "br"),
        ("gzip, br, zstd", "zstd"),
        ("br;q=0.5, gzip;q=0.9", "gzip"),
        ("zstd;q=0, br;q=0, gzip", "gzip"),
        ("*", "zstd"),
        ("*;q=0.1, gzip;q=0", "zstd"),
        ("identity", None),
        ("gzip;q=0", None),
        ("gzip;q=abc, br;q=7, ,;;,", None),
        ("", None),
    ],
)
def test_negotiation_with_q_values(accept: str, expected: str | None) -> None:
    """Accept-Encoding q-values pick the coding; malformed entries are ignored, never raise."""
    assert negotiate(accept.encode()) == expected


@pytest.mark.parametrize(
    ("coding", "decode"),
    [("gzip", gzip.decompress), ("br", brotli.decompress), ("zstd", zstandard.ZstdDecompressor().decompress)],
)
def test_each_coding_round_trips(coding: str, decode: object) -> None:
    """A 4 KB JSON body comes back encoded, smaller by more than 40 %, and decodes to the original."""
    status, headers, body = raw(client(), "/items", coding)
    assert status == 200
    assert headers["content-encoding"] == coding
    assert "accept-encoding" in headers["vary"].lower()
    original = json.dumps(PAYLOAD, separators=(",", ":")).encode()
    assert int(headers["content-length"]) == len(body) < 0.6 * len(original)
    assert json.loads(decode(body)) == PAYLOAD  # type: ignore[operator]


def test_small_body_not_compressed() -> None:
    """Bodies under the minimum size go out as they are (with Vary)."""
    _status, headers, body = raw(client(), "/", "gzip")
    assert body == b"hello"
    assert "content-encoding" not in headers
    assert headers["vary"] == "Accept-Encoding"


def test_compressed_media_and_existing_encoding_skipped() -> None:
    """image/png and responses that already have Content-Encoding pass through untouched."""
    c = client()
    _, headers, body = raw(c, "/image", "gzip")
    assert "content-encoding" not in headers
    assert body.startswith(b"\x89PNG")
    _, headers, body = raw(c, "/encoded", "br")
    assert headers["content-encoding"] == "gzip"
    assert body == b"already" * 200


def test_route_rule_disables_compression() -> None:
    """A rule with compress=False leaves that route uncompressed."""
    c = client(WebConfig(rules=[Rule(path="/items", compress=False)]))
    _, headers, _ = raw(c, "/items", "gzip")
    assert "content-encoding" not in headers


def test_streaming_body_compressed_per_chunk() -> None:
    """A streamed response is compressed chunk by chunk, without Content-Length, and decodes whole."""
    _, headers, body = raw(client(), "/stream", "gzip")
    assert headers["content-encoding"] == "gzip"
    assert "content-length" not in headers
    assert zlib.decompress(body, 31) == b"first chunk " * 100 + b"second chunk " * 100


def test_sse_not_compressed() -> None:
    """Server-Sent Events pass through uncompressed."""
    _, headers, body = raw(client(), "/events", "gzip")
    assert "content-encoding" not in headers
    assert body == b"data: one\n\ndata: two\n\n"


def test_etag_gets_coding_suffix() -> None:
    """The strong ETag of the identity body gets a coding suffix on the compressed representation."""
    c = client(etag=True)
    _, plain, _ = raw(c, "/items", "identity")
    _, packed, _ = raw(c, "/items", "br")
    assert packed["etag"] == plain["etag"][:-1] + '-br"'
    response = c.get("/items", headers={"accept-encoding": "br", "if-none-match": packed["etag"]})
    assert response.status_code == 304
    assert response.headers["etag"] == packed["etag"]  # the validator the client holds, suffix included
    assert "accept-encoding" in response.headers["vary"].lower()


def test_head_not_compressed() -> None:
    """HEAD responses keep their headers and are not compressed."""
    response = client().head("/items", headers={"accept-encoding": "gzip"})
    assert response.status_code == 200
    assert "content-encoding" not in response.headers


def test_gzip_is_at_most_five_percent_larger_than_gzip_9() -> None:
    """gzip at level 5 with a body-sized window stays within 5 % of level 9's size on JSON."""
    from perfkit.web.compression import _Encoder

    rnd = random.Random(1)
    users = [{"id": i, "email": f"user{i}@example.com", "score": rnd.random()} for i in range(60)]
    for body in (json.dumps(PAYLOAD).encode(), json.dumps(users).encode()):
        out = _Encoder("gzip", WebConfig(), None).whole(body)
        assert gzip.decompress(out) == body
        nine = zlib.compressobj(9, zlib.DEFLATED, 31)
        reference = len(nine.compress(body) + nine.flush())
        assert len(out) <= 1.05 * reference, (len(out), reference)


FILE_BYTES = bytes(str(list(range(5000))), "ascii")[:20000]  # 20,000 bytes of compressible text


def ranged_client(tmp_path: Path, stack: str) -> TestClient:
    """A Starlette app serving a 20,000-byte text file (FileResponse: Range, multipart/byteranges) and a
    hand-made 206, behind CompressionMiddleware alone or the whole `instrument()` stack."""
    path = tmp_path / "big.txt"
    path.write_bytes(FILE_BYTES)

    async def file(request: Request) -> Response:
        return FileResponse(path, media_type="text/plain")

    async def partial(request: Request) -> Response:
        body = FILE_BYTES[10000:]
        return Response(body, status_code=206, media_type="application/json",
                        headers={"content-range": "bytes 10000-19999/20000"})  # fmt: skip

    async def ranged_200(request: Request) -> Response:  # odd, but a Content-Range is never recoded
        return Response(FILE_BYTES, media_type="text/plain", headers={"content-range": "bytes 0-19999/20000"})

    app = Starlette(routes=[Route("/file", file), Route("/partial", partial), Route("/ranged", ranged_200)])
    if stack == "instrument":
        return TestClient(perfkit.instrument(app, config=WebConfig(), collector=Collector(), monitor=False))
    app.add_middleware(CompressionMiddleware, config=WebConfig())
    return TestClient(app)


@pytest.mark.parametrize("stack", ["middleware", "instrument"])
@pytest.mark.parametrize("accept", ["gzip", "br", "zstd"])
def test_single_range_206_not_compressed(tmp_path: Path, stack: str, accept: str) -> None:
    """A FileResponse answering `Range: bytes=10000-19999` (206, Content-Range) goes out uncompressed."""
    c = ranged_client(tmp_path, stack)
    with c.stream("GET", "/file", headers={"accept-encoding": accept, "range": "bytes=10000-19999"}) as r:
        body = b"".join(r.iter_raw())
    assert r.status_code == 206
    assert r.headers["content-range"] == "bytes 10000-19999/20000"
    assert "content-encoding" not in r.headers
    assert body == FILE_BYTES[10000:20000]
    assert int(r.headers["content-length"]) == 10000


@pytest.mark.parametrize("stack", ["middleware", "instrument"])
def test_multipart_byteranges_not_compressed(tmp_path: Path, stack: str) -> None:
    """A multi-range 206 (multipart/byteranges, no top-level Content-Range) goes out uncompressed."""
    c = ranged_client(tmp_path, stack)
    headers = {"accept-encoding": "gzip", "range": "bytes=0-999,10000-10999"}
    with c.stream("GET", "/file", headers=headers) as r:
        body = b"".join(r.iter_raw())
    assert r.status_code == 206
    assert r.headers["content-type"].startswith("multipart/byteranges")
    assert "content-encoding" not in r.headers
    assert FILE_BYTES[0:1000] in body and FILE_BYTES[10000:11000] in body


@pytest.mark.parametrize("stack", ["middleware", "instrument"])
@pytest.mark.parametrize("path", ["/partial", "/ranged"])
def test_hand_made_206_or_content_range_not_compressed(tmp_path: Path, stack: str, path: str) -> None:
    """An app's own 206, and any response carrying Content-Range, are never compressed."""
    with ranged_client(tmp_path, stack).stream("GET", path, headers={"accept-encoding": "gzip"}) as r:
        body = b"".join(r.iter_raw())
    assert "content-encoding" not in r.headers
    assert "content-range" in r.headers
    assert body in (FILE_BYTES, FILE_BYTES[10000:])


@pytest.mark.parametrize("stack", ["middleware", "instrument"])
def test_whole_file_compressed_without_accept_ranges(tmp_path: Path, stack: str) -> None:
    """The whole file (200) is still compressed, and no longer offers byte ranges of the encoded body."""
    with ranged_client(tmp_path, stack).stream("GET", "/file", headers={"accept-encoding": "gzip"}) as r:
        body = b"".join(r.iter_raw())
    assert r.status_code == 200
    assert r.headers["content-encoding"] == "gzip"
    assert "accept-ranges" not in r.headers
    assert gzip.decompress(body) == FILE_BYTES
