"""Conditional requests: ETag and 304."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

import perfkit
from perfkit.metrics import Collector
from perfkit.web import ConditionalMiddleware, Rule, WebConfig
from perfkit.web.conditional import etag_matches

from .conftest import make_starlette

pytestmark = pytest.mark.usefixtures("framework", "stack")
_STACK = ["alone"]


@pytest.fixture(params=["alone", "instrument"])
def stack(request: pytest.FixtureRequest) -> Iterator[str]:
    """ConditionalMiddleware alone, and inside instrument() (compression off), where the outer layer
    tags plain GETs itself."""
    _STACK[0] = request.param
    yield request.param
    _STACK[0] = "alone"


def client(config: WebConfig | None = None) -> TestClient:
    app = make_starlette()
    config = config or WebConfig()
    if _STACK[0] == "instrument":
        config.compress = False
        return TestClient(perfkit.instrument(app, config=config, collector=Collector(), monitor=False))
    app.add_middleware(ConditionalMiddleware, config=config)
    return TestClient(app)


def test_strong_etag_and_304() -> None:
    """GET gets a strong ETag; sending it back in If-None-Match gives 304 with no body."""
    c = client()
    first = c.get("/items")
    etag = first.headers["etag"]
    assert etag.startswith('"')
    assert not etag.startswith("W/")
    second = c.get("/items", headers={"if-none-match": etag})
    assert second.status_code == 304
    assert second.content == b""
    assert second.headers["etag"] == etag
    assert "content-length" not in second.headers or second.headers["content-length"] == "0"


@pytest.mark.parametrize("form", ["W/{tag}", '"nope", {tag}', "*", "{tag_br}"])
def test_if_none_match_forms(form: str) -> None:
    """Weak form, lists, * and the compressed suffix all match (weak comparison)."""
    c = client()
    tag = c.get("/items").headers["etag"]
    header = form.format(tag=tag, tag_br=tag[:-1] + '-br"')
    assert c.get("/items", headers={"if-none-match": header}).status_code == 304


def test_different_body_different_etag() -> None:
    """Different bodies have different ETags; a stale one gets a full 200."""
    c = client()
    a, b = c.get("/items/1").headers["etag"], c.get("/items/2").headers["etag"]
    assert a != b
    assert c.get("/items/2", headers={"if-none-match": a}).status_code == 200


def test_post_and_errors_untouched() -> None:
    """POST responses and non-200 responses get no ETag."""
    c = client()
    assert "etag" not in c.post("/echo", content=b"x").headers
    assert "etag" not in c.get("/missing").headers


def test_streaming_gets_no_etag() -> None:
    """A streamed body passes through without buffering or ETag."""
    response = client().get("/stream")
    assert "etag" not in response.headers
    assert response.content.startswith(b"first chunk")


def test_if_modified_since() -> None:
    """If-Modified-Since at or after Last-Modified gives 304; before it gives 200."""
    c = client()
    later = c.get("/dated", headers={"if-modified-since": "Thu, 22 Oct 2015 07:28:00 GMT"})
    earlier = c.get("/dated", headers={"if-modified-since": "Tue, 20 Oct 2015 07:28:00 GMT"})
    assert later.status_code == 304
    assert earlier.status_code == 200


@pytest.mark.parametrize("bad", ['"unterminated', "W/", ",,,", '"' * 5000, "\x01\x02"])
def test_malformed_if_none_match(bad: str) -> None:
    """Malformed If-None-Match is ignored: a normal 200."""
    response = client().get("/items", headers={"if-none-match": bad.encode("latin-1")})
    assert response.status_code == 200


@pytest.mark.parametrize("bad", ["yesterday", "", "Thu, 99 Foo 2015 99:99:99 GMT", "9" * 400])
def test_malformed_if_modified_since(bad: str) -> None:
    """Malformed If-Modified-Since is ignored: a normal 200."""
    assert client().get("/dated", headers={"if-modified-since": bad}).status_code == 200


def test_rule_disables_etag() -> None:
    """A rule with etag=False leaves that route without ETag."""
    c = client(WebConfig(rules=[Rule(path="/items", etag=False)]))
    assert "etag" not in c.get("/items").headers


def test_etag_matches_unit() -> None:
    """Weak comparison ignores W/ and the coding suffix but not the opaque tag."""
    assert etag_matches(b'W/"abc"', b'"abc"')
    assert etag_matches(b'"abc-gzip"', b'"abc"')
    assert not etag_matches(b'"abd"', b'"abc"')
    assert not etag_matches(b"abc", b'"abc"')


def test_head_gets_no_body_hash_etag() -> None:
    """HEAD is not given the hash of its empty body (it would not match the GET's ETag)."""
    c = client()
    assert "etag" not in c.head("/items").headers
    assert c.head("/items").status_code == 200
