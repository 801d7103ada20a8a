"""The cache over HTTP, against a real `perfkit serve` on Redis: values, ETags, TTLs, tags, patterns,
batches, compression and encryption at rest, namespaces, and the browser/CDN strategies."""

from __future__ import annotations

import base64

import pytest
import redis.asyncio as aioredis

from perfkit.serve import ServeClient
from tests.conftest import REDIS_URL, pass_time
from tests.serve._server import Receiver

pytestmark = pytest.mark.redis


async def raw_value(ns: str, key: str) -> bytes | None:
    """The bytes Redis holds for the service's key (`{ns}:key`), to look at what is stored at rest."""
    client = aioredis.from_url(REDIS_URL)
    try:
        value: bytes | None = await client.get(f"{{{ns}}}:{key}")
        return value
    finally:
        await client.aclose()


async def test_json_value_round_trips_with_its_etag(app: ServeClient) -> None:
    """A JSON value comes back as the same JSON, with the ETag the write returned."""
    etag = await app.set("slide:1", {"title": "Q3", "n": [1, 2.5, None]}, ttl=60)
    response = await app.http.get(app._key("slide:1", None))
    assert response.status_code == 200
    assert response.headers["etag"] == etag
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"title": "Q3", "n": [1, 2.5, None]}


async def test_conditional_get_answers_304_while_the_etag_matches(app: ServeClient) -> None:
    """If-None-Match with the current ETag is a 304 without a body; after a change, the new value."""
    etag = await app.set("deck", [1, 2, 3])
    assert await app.get("deck", etag=etag) is ...
    await app.set("deck", [1, 2, 3, 4])
    assert await app.get("deck", etag=etag) == [1, 2, 3, 4]


async def test_bytes_by_base64_and_by_octet_stream(app: ServeClient) -> None:
    """Opaque bytes go in as base64 JSON or as application/octet-stream and come back as the same bytes."""
    blob = bytes(range(256))
    await app.http.put(app._key("b64", None), json={"bytes": base64.b64encode(blob).decode()})
    await app.set_bytes("raw", blob, ttl=60, tags=["blobs"])
    for key in ("b64", "raw"):
        response = await app.http.get(app._key(key, None))
        assert response.headers["content-type"] == "application/octet-stream"
        assert response.content == blob
    assert await app.get_many(["b64", "raw"]) == {"b64": blob, "raw": blob}


async def test_a_value_expires_after_its_ttl(app: ServeClient) -> None:
    """ttl is seconds: the value is gone once they have passed."""
    await app.set("short", "soon gone", ttl=0.3)
    assert await app.get("short") == "soon gone"
    await pass_time(0.4)
    assert await app.get("short") is None


async def test_delete_and_miss(app: ServeClient) -> None:
    """DELETE removes the key (and says whether it was there); a miss is a 404 problem."""
    await app.set("gone", 1)
    assert await app.delete("gone") is True
    assert await app.delete("gone") is False
    response = await app.http.get(app._key("gone", None))
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


async def test_invalidate_by_tag_and_by_pattern(app: ServeClient) -> None:
    """Tags remove the keys carrying them; a pattern removes the matching keys of the namespace only."""
    await app.set("user:1", 1, tags=["users"])
    await app.set("user:2", 2, tags=["users"])
    await app.set("deck:1", 3)
    await app.set("deck:2", 4)
    await app.set("other", 5)
    assert (await app.invalidate(tags=["users"]))["removed"] == 2
    assert (await app.invalidate(pattern="deck:*"))["removed"] == 2
    assert await app.get_many(["user:1", "user:2", "deck:1", "deck:2", "other"]) == {"other": 5}


async def test_batch_set_and_get_with_per_item_options(app: ServeClient) -> None:
    """A batch write stores items with their own TTL and tags; a batch read lists the missing keys."""
    written = await app.set_many([
        {"key": "a", "value": {"x": 1}, "ttl": 60, "tags": ["t"]},
        {"key": "b", "bytes": base64.b64encode(b"\x00\xff").decode()},
        {"key": "c", "value": "three", "ttl": 0.3},
    ])  # fmt: skip
    assert [w["key"] for w in written] == ["a", "b", "c"]
    answer = (
        await app.http.post(app._ns(None) + "/batch-get", json={"keys": ["a", "b", "c", "nope"]})
    ).json()
    assert answer["values"]["a"] == {"etag": written[0]["etag"], "value": {"x": 1}}
    assert base64.b64decode(answer["values"]["b"]["bytes"]) == b"\x00\xff"
    assert answer["missing"] == ["nope"]
    await app.invalidate(tags=["t"])
    assert await app.get_many(["a", "b"]) == {"b": b"\x00\xff"}


async def test_compress_stores_the_value_compressed(app: ServeClient, ns: str) -> None:
    """`compress: true` stores zstd bytes at rest (much smaller than the value); the read is the value."""
    text = "slide " * 5000
    await app.set("big", text, compress=True)
    await app.set("plain", text, compress=False)
    compressed, plain = await raw_value(ns, "big"), await raw_value(ns, "plain")
    assert compressed is not None and plain is not None
    assert len(compressed) < len(text) // 20 < len(plain) // 20
    assert await app.get("big") == text


async def test_sensitive_values_are_encrypted_at_rest(app: ServeClient, ns: str) -> None:
    """`sensitive: true` is AES-GCM encrypted in Redis (the plaintext is nowhere in it); reads decrypt."""
    await app.set("card", {"pan": "4111111111111111"}, sensitive=True)
    await app.set("open", {"pan": "4111111111111111"})
    stored, open_ = await raw_value(ns, "card"), await raw_value(ns, "open")
    assert stored is not None and open_ is not None
    assert b"4111111111111111" in open_ and b"4111111111111111" not in stored
    assert stored[0] & 0x04  # perfkit's codec header: the ENCRYPTED flag
    assert await app.get("card") == {"pan": "4111111111111111"}


async def test_namespaces_are_separate(app: ServeClient) -> None:
    """The same key in two namespaces holds two values; a pattern never crosses into another namespace."""
    await app.set("k", "mine")
    await app.set("k", "theirs", namespace=app.namespace + "-b")
    await app.invalidate(pattern="*", namespace=app.namespace + "-b")
    assert await app.get("k") == "mine"
    assert await app.get("k", namespace=app.namespace + "-b") is None


async def test_browser_strategy_answers_private_max_age(app: ServeClient) -> None:
    """strategy browser: Cache-Control private with max-age = the TTL left, and the ETag."""
    etag = await app.set("page", {"a": 1}, ttl=120, strategy="browser")
    response = await app.http.get(app._key("page", None))
    assert response.headers["etag"] == etag
    control = response.headers["cache-control"]
    assert control.startswith("private, max-age=")
    assert 115 <= int(control.rsplit("=", 1)[1]) <= 120
    assert "surrogate-key" not in response.headers


async def test_cdn_strategy_sends_surrogate_keys_and_purges_on_invalidation(
    app: ServeClient, receiver: Receiver
) -> None:
    """strategy cdn: s-maxage, Surrogate-Key and Cache-Tag; an invalidation calls the purge hook."""
    await app.set("asset", "x", ttl=300, tags=["deck-7", "org-1"], strategy="cdn")
    response = await app.http.get(app._key("asset", None))
    assert response.headers["surrogate-key"] == "deck-7 org-1"
    assert response.headers["cache-tag"] == "deck-7,org-1"
    assert response.headers["cache-control"].startswith("public, max-age=0, s-maxage=")
    answer = await app.invalidate(tags=["deck-7"])
    assert answer == {"removed": 1, "purged": True}
    purge = {"namespace": app.namespace, "tags": ["deck-7"], "pattern": None, "surrogate_keys": ["deck-7"]}
    assert purge in receiver.wait_for("/purge", body=purge)  # (sent in the background)


async def test_bad_values_are_problems_naming_the_field(app: ServeClient) -> None:
    """A wrong type, bad base64 or both value and bytes: 422 problem+json whose errors name the field."""
    cases = [
        ({"value": 1, "ttl": "soon"}, "ttl"),
        ({"value": 1, "ttl": -1}, "ttl"),
        ({"bytes": "***"}, "bytes"),
        ({"value": 1, "bytes": "AA=="}, "value"),
        ({"value": 1, "tags": ["has space"]}, "tags[0]"),
        ({"value": 1, "strategy": "edge"}, "strategy"),
        ({"value": 1, "colour": "red"}, "body"),
    ]
    for body, field in cases:
        response = await app.http.put(app._key("k", None), json=body)
        assert response.status_code == 422, body
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["status"] == 422 and problem["type"].startswith("https://")
        assert problem["errors"][0]["field"] == field, (body, problem)
    bad_pattern = await app.http.post(app._ns(None) + "/invalidate", json={"pattern": "a["})
    assert bad_pattern.json()["errors"][0]["field"] == "pattern"
