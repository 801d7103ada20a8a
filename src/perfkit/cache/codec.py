"""The stored form of a value: one header byte, optional timestamps, then the (compressed, encrypted)
serialized payload.

    [0x80 | flags][expires_at f64]?[fresh_until f64]?[payload]

Timestamps travel with the value so an L1 copy expires exactly when its L2 original does, and so
stale-while-revalidate knows when a value went stale without a second round trip. Integers written
by `incr` are stored as plain ASCII digits (what Redis INCRBY needs) and read back as ints.
"""

from __future__ import annotations

import gzip
import struct
import threading
from typing import Any, Final

import zstandard

from perfkit.cache.crypto import Encryptor
from perfkit.errors import ConfigurationError, SerializationError, ValueTooLargeError
from perfkit.serialization import Serializer

MARK: Final = 0x80
ZSTD: Final = 0x01
GZIP: Final = 0x02
ENCRYPTED: Final = 0x04
EXPIRES: Final = 0x08
FRESH: Final = 0x10
_F64 = struct.Struct("<d")
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
        self._local = threading.local()  # zstd contexts are not thread-safe; one pair per thread

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
        try:
            payload = self.serializer.dumps(value)
        except (TypeError, ValueError, OverflowError) as exc:
            raise SerializationError(
                f"cannot cache key {name!r}: a value of type {type(value).__name__} is not serializable "
                f"with {self.serializer.name} ({exc})"
            ) from exc
        size = len(payload)
        if size > self.max_value_size:
            raise ValueTooLargeError(
                f"value for key {name!r} is {size} bytes serialized, "
                f"over max_value_size={self.max_value_size}"
            )
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
            payload = self.encryptor.encrypt(payload, key.encode("utf-8", "surrogatepass"))
            flags |= ENCRYPTED
        head = bytearray((flags,))
        if expires_at is not None:
            head[0] |= EXPIRES
            head += _F64.pack(expires_at)
        if fresh_until is not None:
            head[0] |= FRESH
            head += _F64.pack(fresh_until)
        return bytes(head) + payload

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
            payload = self.encryptor.decrypt(payload, key.encode("utf-8", "surrogatepass"))
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
            return self.serializer.loads(payload), expires_at, fresh_until
        except SerializationError:
            raise
        except Exception as exc:
            raise SerializationError(f"cached value for key {key!r} could not be decoded: {exc}") from exc
