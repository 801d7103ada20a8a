"""Compression, encryption at rest with key rotation, and the pickle opt-in, on the real stores."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import redis

from perfkit import Cache, ConfigurationError, SerializationError
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
    assert len(blob) < len(cache.tiers.codec.serializer.dumps(value)) / 5
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
    if cache.tiers.l2 is not None and cache.tiers.l2.kind == "redis":

        def write(c: Cache, key: str, blob: bytes) -> None:
            client = redis.Redis.from_url(REDIS_URL)
            client.set(namespace_prefix(c.namespace) + key, blob)
            client.close()

        return write

    def write_sqlite(c: Cache, key: str, blob: bytes) -> None:
        path = c.tiers.l2.path  # type: ignore[union-attr]
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


def _copy_raw(cache: Cache, raw, src: str, dst: str, dst_cache: Cache | None = None) -> None:  # type: ignore[no-untyped-def]
    """Plant the stored bytes of `src` under `dst` (in `dst_cache`'s namespace), as an attacker with
    write access to the store would; SQLite gets a fresh row, Redis a plain SET."""
    target = dst_cache or cache
    blob = raw(cache, src)
    assert blob is not None
    if cache.tiers.l2 is not None and cache.tiers.l2.kind == "redis":
        client = redis.Redis.from_url(REDIS_URL)
        client.set(namespace_prefix(target.namespace) + dst, blob)
        client.close()
        return
    with sqlite3.connect(cache.tiers.l2.path) as conn:  # type: ignore[union-attr]
        conn.execute(
            "INSERT OR REPLACE INTO perfkit_cache (key, value, expires_at) VALUES (?, ?, NULL)",
            (f"{target.namespace}:{dst}", blob),
        )


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"serializer": "pickle", "pickle_key": "k" * 32}, id="pickle"),
        pytest.param({"encryption_keys": [generate_key()]}, id="encrypted"),
        pytest.param(
            {"serializer": "pickle", "pickle_key": "k" * 32, "encryption_keys": [generate_key()]},
            id="pickle+encrypted",
        ),
    ],
)
async def test_value_moved_to_another_key_is_a_miss(stored, options) -> None:  # type: ignore[no-untyped-def]
    """Signed or encrypted bytes copied from key A to key B are refused at B (a miss), not served."""
    make, raw = stored
    cache = make(**options)
    await cache.set("user:1:role", "admin")
    await cache.set("user:2:role", "guest")
    _copy_raw(cache, raw, "user:1:role", "user:2:role")
    assert await cache.get("user:2:role", "miss") == "miss"
    assert await cache.get("user:1:role") == "admin"


async def test_pickle_moved_to_another_namespace_is_a_miss(stored) -> None:  # type: ignore[no-untyped-def]
    """A signed pickle copied into another namespace under the same key is refused there."""
    make, raw = stored
    a = make(serializer="pickle", pickle_key="k" * 32)
    b = Cache(a.url, namespace=a.namespace + "-other", serializer="pickle", pickle_key="k" * 32)
    try:
        await a.set("obj", {"role": "admin"})
        _copy_raw(a, raw, "obj", "obj", dst_cache=b)
        assert await b.get("obj", "miss") == "miss"
    finally:
        await b.clear()
        await b.close()


async def test_pickle_signed_without_key_binding_is_a_miss(stored) -> None:  # type: ignore[no-untyped-def]
    """A pickle signed the old way (HMAC over the payload only) is a miss, never unpickled."""
    import hmac
    import pickle

    make, _ = stored
    cache = make(serializer="pickle", pickle_key="k" * 32, compression=None)
    await cache.set("obj", "placeholder")
    unpickled: list[str] = []

    class Canary:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (unpickled.append, ("ran",))

    body = pickle.dumps(Canary())
    old = hmac.new(b"k" * 32, body, "sha256").digest() + body
    header = bytes((0x80 | (2 << 5),))  # MARK | pickle serializer id, no timestamps, no compression
    _raw_writer(cache)(cache, "obj", header + old)
    assert await cache.get("obj", "miss") == "miss"
    assert unpickled == []


@pytest.mark.parametrize("serializer", ["msgpack", "json", "pickle"])
async def test_deeply_nested_value_is_a_serialization_error(stored, serializer: str) -> None:  # type: ignore[no-untyped-def]
    """A value nested 100k deep raises SerializationError naming the key, not a raw RecursionError."""
    make, _ = stored
    cache = make(serializer=serializer, pickle_key="k" * 32)
    deep: list[object] = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(SerializationError, match=r"'deep-key'.*nested too deeply"):
        await cache.set("deep-key", deep)
