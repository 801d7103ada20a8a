"""The stored form of a value: one header byte, optional timestamps, then the (compressed, encrypted)
serialized payload.

    [0x80 | flags][expires_at f64]?[fresh_until f64]?[payload]

Timestamps travel with the value so an L1 copy expires exactly when its L2 original does, and so
stale-while-revalidate knows when a value went stale without a second round trip. Integers written
by `incr` are stored as plain ASCII digits (what Redis INCRBY needs) and read back as ints.

A value is bound to where it was written: the namespace and the stored key are the AES-GCM associated
data and part of the signed-pickle HMAC, so bytes copied under another key or namespace are refused
(read as a miss), never decrypted or unpickled there.
"""

from __future__ import annotations

import gzip
import pickle
import struct
import threading
from typing import Any, Final

import zstandard

from perfkit.cache.crypto import Encryptor
from perfkit.errors import ConfigurationError, SerializationError, ValueTooLargeError
from perfkit.serialization import Serializer, SignedPickleSerializer

MARK: Final = 0x80
ZSTD: Final = 0x01
GZIP: Final = 0x02
ENCRYPTED: Final = 0x04
EXPIRES: Final = 0x08
FRESH: Final = 0x10
_F64 = struct.Struct("<d")
_LEN = struct.Struct(">I")
_SERIALIZER_IDS = {"msgpack": 0, "json": 1, "pickle": 2}
_DIGITS = frozenset(b"-0123456789")

Decoded = tuple[Any, float | None, float | None]  # value, expires_at, fresh_until (wall clock)


class Codec:
    """Encodes values for byte-oriented tiers (SQLite, Redis) and decodes what they return."""

    def __init__(
        self,
        serializer: Serializer,
        *,
        compression: str | None = "zstd",
        compress_threshold: int = 1024,
        encryptor: Encryptor | None = None,
        encrypt_all: bool = True,
        max_value_size: int = 16 * 1024 * 1024,
        namespace: str = "",
    ) -> None:
        if compression not in (None, "zstd", "gzip"):
            raise ConfigurationError("compression", f"{compression!r} is not one of ['zstd', 'gzip', None]")
        self.serializer = serializer
        self._ser_bits = _SERIALIZER_IDS.get(serializer.name, 0) << 5
        self.compression = compression
        self.compress_threshold = compress_threshold
        self.encryptor = encryptor
        self.encrypt_all = encryptor is not None and encrypt_all
        self.max_value_size = max_value_size
        ns = namespace.encode("utf-8", "surrogatepass")
        self._ns_context = _LEN.pack(len(ns)) + ns
        # signed pickle takes a context to bind; other serializers have no signature to bind it to
        self._signed = serializer if isinstance(serializer, SignedPickleSerializer) else None
        self._local = threading.local()  # zstd contexts are not thread-safe; one pair per thread

    def context(self, key: str) -> bytes:
        """What a stored value is bound to: this codec's namespace and the stored key, length-prefixed."""
        return self._ns_context + key.encode("utf-8", "surrogatepass")

    def _zstd(self) -> tuple[zstandard.ZstdCompressor, zstandard.ZstdDecompressor]:
        pair = getattr(self._local, "zstd", None)
        if pair is None:
            pair = self._local.zstd = (zstandard.ZstdCompressor(level=3), zstandard.ZstdDecompressor())
        return pair

    def encode(
        self,
        key: str,
        value: Any,
        *,
        expires_at: float | None = None,
        fresh_until: float | None = None,
        sensitive: bool = False,
        name: str = "",
    ) -> bytes:
        """The stored bytes for `value` under stored key `key`; errors name `name`, the caller's key."""
        name = name or key
        payload = self._serialize(value, key, name)
        size = len(payload)
        flags = MARK | self._ser_bits
        if self.compression is not None and size >= self.compress_threshold:
            packed = (
                self._zstd()[0].compress(payload) if self.compression == "zstd" else gzip.compress(payload, 6)
            )
            if len(packed) < size:
                payload = packed
                flags |= ZSTD if self.compression == "zstd" else GZIP
        if sensitive or self.encrypt_all:
            if self.encryptor is None:
                raise ConfigurationError(
                    "encryption_keys", f"sensitive=True for key {name!r} needs encryption_keys="
                )
            payload = self.encryptor.encrypt(payload, self.context(key))
            flags |= ENCRYPTED
        head = bytearray((flags,))
        if expires_at is not None:
            head[0] |= EXPIRES
            head += _F64.pack(expires_at)
        if fresh_until is not None:
            head[0] |= FRESH
            head += _F64.pack(fresh_until)
        return bytes(head) + payload

    def check(self, key: str, value: Any, name: str = "") -> None:
        """Raise what `encode` would for `value` (unserializable, too deep, over `max_value_size`)
        without keeping the bytes: the in-process tier's checks, so it accepts what an L2 would."""
        self._serialize(value, key, name or key)

    def _serialize(self, value: Any, key: str, name: str) -> bytes:
        try:
            signed = self._signed
            if signed is None:
                payload = self.serializer.dumps(value)
            else:
                payload = signed.dumps(value, self.context(key))
        except RecursionError:
            raise SerializationError(
                f"cannot cache key {name!r}: the {type(value).__name__} value is nested too deeply "
                f"to serialize with {self.serializer.name}"
            ) from None
        except (TypeError, ValueError, OverflowError, AttributeError, pickle.PicklingError) as exc:
            raise SerializationError(
                f"cannot cache key {name!r}: a value of type {type(value).__name__} is not serializable "
                f"with {self.serializer.name} ({exc})"
            ) from exc
        if len(payload) > self.max_value_size:
            raise ValueTooLargeError(
                f"value for key {name!r} is {len(payload)} bytes serialized, "
                f"over max_value_size={self.max_value_size}"
            )
        return payload

    def decode(self, key: str, data: bytes) -> Decoded:
        if not data:
            raise SerializationError(f"cached value for key {key!r} is empty")
        flags = data[0]
        if not flags & MARK:
            if flags in _DIGITS:
                return int(data), None, None
            raise SerializationError(f"cached value for key {key!r} was not written by perfkit")
        pos = 1
        expires_at = fresh_until = None
        if flags & EXPIRES:
            expires_at = _F64.unpack_from(data, pos)[0]
            pos += 8
        if flags & FRESH:
            fresh_until = _F64.unpack_from(data, pos)[0]
            pos += 8
        payload = data[pos:]
        if flags & ENCRYPTED:
            if self.encryptor is None:
                raise SerializationError(
                    f"cached value for key {key!r} is encrypted but no encryption_keys are set"
                )
            payload = self.encryptor.decrypt(payload, self.context(key))
        elif self.encrypt_all:
            raise SerializationError(
                f"refusing unencrypted value for key {key!r}: this cache encrypts everything"
            )
        limit = self.max_value_size
        if flags & ZSTD:
            try:
                payload = self._zstd()[1].decompress(payload, max_output_size=limit)
            except zstandard.ZstdError as exc:
                raise SerializationError(f"cached value for key {key!r} failed to decompress: {exc}") from exc
        elif flags & GZIP:
            payload = gzip.decompress(payload)
        if (flags >> 5) & 0x3 != self._ser_bits >> 5:
            raise SerializationError(f"cached value for key {key!r} was written with another serializer")
        try:
            signed = self._signed
            value = (
                self.serializer.loads(payload) if signed is None else signed.loads(payload, self.context(key))
            )
            return value, expires_at, fresh_until
        except SerializationError:
            raise
        except Exception as exc:
            raise SerializationError(f"cached value for key {key!r} could not be decoded: {exc}") from exc
