"""Compression, encryption at rest with key rotation, and the pickle opt-in, on the real stores."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import redis

from perfkit import Cache, ConfigurationError
from perfkit.cache import generate_key
from perfkit.cache.backends.redis_keys import namespace_prefix
from perfkit.cache.codec import ENCRYPTED, GZIP, ZSTD
from tests.conftest import REDIS_URL, require_redis

SECRET = "card-4111-1111-1111-1111"


def raw_redis(cache: Cache, key: str) -> bytes | None:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        return client.get(namespace_prefix(cache.namespace) + key)  # type: ignore[return-value]
    finally:
        client.close()


def raw_sqlite(path: Path, cache: Cache, key: str) -> bytes | None:
    with sqlite3.connect(path) as conn:
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'perfkit_cache'").fetchone():
            return None
        row = conn.execute(
            "SELECT value FROM perfkit_cache WHERE key = ?", (f"{cache.namespace}:{key}",)
        ).fetchone()
    return row[0] if row else None


@pytest.fixture(params=["redis", "sqlite"])
async def stored(request: pytest.FixtureRequest, tmp_path: Path, namespace: str):  # type: ignore[no-untyped-def]
    """(make(**options) -> Cache, raw(cache, key) -> bytes) for a real byte store."""
    made: list[Cache] = []
    if request.param == "redis":
        require_redis()
        url, raw = REDIS_URL, raw_redis
    else:
        db = tmp_path / "c.db"
        url, raw = f"sqlite:///{db}", (lambda c, k: raw_sqlite(db, c, k))

    def make(**options: object) -> Cache:
        cache = Cache(url, namespace=namespace, **options)  # type: ignore[arg-type]
        made.append(cache)
        return cache

    yield make, raw
    for cache in made:
        await cache.clear()
        await cache.close()


async def test_large_values_are_compressed_transparently(stored) -> None:  # type: ignore[no-untyped-def]
    """A value over the threshold is stored zstd-compressed and reads back equal."""
    make, raw = stored
    cache = make()
    value = {"rows": [{"id": i, "status": "open", "title": "printer on fire"} for i in range(500)]}
    await cache.set("big", value)
    blob = raw(cache, "big")
    assert blob[0] & ZSTD
    assert len(blob) < len(cache._codec.serializer.dumps(value)) / 5
    assert await cache.get("big") == value


async def test_gzip_and_threshold(stored) -> None:  # type: ignore[no-untyped-def]
    """gzip is available; values under the threshold are stored uncompressed."""
    make, raw = stored
    cache = make(compression="gzip", compress_threshold=100)
    await cache.set("small", "x" * 10)
    await cache.set("big", "x" * 5000)
    assert not raw(cache, "small")[0] & (ZSTD | GZIP)
    assert raw(cache, "big")[0] & GZIP
    assert await cache.get("big") == "x" * 5000


async def test_encrypted_at_rest_never_holds_plaintext(stored) -> None:  # type: ignore[no-untyped-def]
    """With encryption_keys, the stored bytes contain no plaintext, also when compressed."""
    make, raw = stored
    cache = make(encryption_keys=[generate_key()])
    await cache.set("card", {"number": SECRET})
    await cache.set("bulk", [SECRET] * 400)
    for key in ("card", "bulk"):
        blob = raw(cache, key)
        assert blob[0] & ENCRYPTED
        assert SECRET.encode() not in blob
    assert await cache.get("card") == {"number": SECRET}
    assert await cache.get("bulk") == [SECRET] * 400


async def test_key_rotation(stored) -> None:  # type: ignore[no-untyped-def]
    """The newest key encrypts, all keys decrypt; a dropped key's values become misses, not errors."""
    make, _ = stored
    old, new = generate_key(), generate_key()
    await make(encryption_keys=[old]).set("k", "v-old")
    rotated = make(encryption_keys=[new, old])
    assert await rotated.get("k") == "v-old"
    await rotated.set("k2", "v-new")
    only_new = make(encryption_keys=[new])
    assert await only_new.get("k2") == "v-new"
    assert await only_new.get("k", "miss") == "miss"


async def test_sensitive_per_call(stored) -> None:  # type: ignore[no-untyped-def]
    """With encrypt_all=False only sensitive=True values are encrypted."""
    make, raw = stored
    cache = make(encryption_keys=[generate_key()], encrypt_all=False)
    await cache.set("public", "hello")
    await cache.set("private", SECRET, sensitive=True)
    assert b"hello" in raw(cache, "public")
    assert SECRET.encode() not in raw(cache, "private")
    assert await cache.get("private") == SECRET


async def test_sensitive_without_keys_is_a_configuration_error(stored) -> None:  # type: ignore[no-untyped-def]
    """sensitive=True without encryption keys refuses to store plaintext."""
    make, raw = stored
    cache = make()
    with pytest.raises(ConfigurationError, match="encryption_keys"):
        await cache.set("p", SECRET, sensitive=True)
    assert raw(cache, "p") is None


async def test_tampered_ciphertext_is_a_miss(stored) -> None:  # type: ignore[no-untyped-def]
    """A flipped byte fails authentication: the read is a miss, never garbage or a crash."""
    make, raw = stored
    cache = make(encryption_keys=[generate_key()])
    await cache.set("k", "value")
    await cache.set("other", "fine")
    blob = bytearray(raw(cache, "k"))
    blob[-1] ^= 0xFF
    writer = _raw_writer(cache)
    writer(cache, "k", bytes(blob))
    assert await cache.get("k", "miss") == "miss"
    assert await cache.get("other") == "fine"


async def test_plaintext_planted_in_encrypted_cache_is_refused(stored) -> None:  # type: ignore[no-untyped-def]
    """An unencrypted value written by someone else is not trusted by a cache that encrypts all."""
    make, _ = stored
    plain = make()
    await plain.set("k", "planted")
    enc = make(encryption_keys=[generate_key()])
    assert await enc.get("k", "miss") == "miss"


def _raw_writer(cache: Cache):  # type: ignore[no-untyped-def]
    if cache._l2 is not None and cache._l2.kind == "redis":

        def write(c: Cache, key: str, blob: bytes) -> None:
            client = redis.Redis.from_url(REDIS_URL)
            client.set(namespace_prefix(c.namespace) + key, blob)
            client.close()

        return write

    def write_sqlite(c: Cache, key: str, blob: bytes) -> None:
        path = c._l2.path  # type: ignore[union-attr]
        with sqlite3.connect(path) as conn:
            conn.execute("UPDATE perfkit_cache SET value = ? WHERE key = ?", (blob, f"{c.namespace}:{key}"))

    return write_sqlite


async def test_pickle_needs_a_key_and_checks_its_signature(tmp_path: Path) -> None:
    """Pickle is refused without pickle_key; with it, a payload signed with another key is a miss."""
    with pytest.raises(ConfigurationError, match="pickle_key"):
        Cache(f"sqlite:///{tmp_path}/p.db", serializer="pickle")
    good = Cache(f"sqlite:///{tmp_path}/p.db", serializer="pickle", pickle_key="k" * 32, namespace="p")
    await good.set("obj", {1, 2, 3})
    assert await good.get("obj") == {1, 2, 3}
    evil = Cache(f"sqlite:///{tmp_path}/p.db", serializer="pickle", pickle_key="e" * 32, namespace="p")
    assert await evil.get("obj", "miss") == "miss"
    await good.close()
    await evil.close()
