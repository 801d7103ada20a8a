"""How the service stores a value in perfkit's Cache, and the HTTP headers it answers a read with.

A stored value is one msgpack list: `[kind, data, etag, expires_at, strategy, tags]`. `data` is the
JSON text as sent (never re-encoded: a read returns the same bytes) or the opaque bytes, zstd-compressed
when `compress` asks for it (or, left unset, from 1 KiB when that makes it smaller). The ETag is a digest
of the kind and the uncompressed data, so it names the content and survives a restart.
`sensitive` values are encrypted at rest by the cache (AES-GCM, `Cache(encryption_keys=...)`).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

import zstandard

JSON_KIND, BYTES_KIND, COMPRESSED = 0, 1, 2
COMPRESS_FROM = 1024
NO_EXPIRY_MAX_AGE = 31_536_000  # a year: what "no expiry" tells a browser or a CDN
_zc = zstandard.ZstdCompressor(level=3)
_zd = zstandard.ZstdDecompressor()


def etag_of(kind: int, data: bytes) -> str:
    return '"' + hashlib.blake2b(data, digest_size=12, person=b"perfkit-serve%d" % kind).hexdigest() + '"'


@dataclass(slots=True)
class Stored:
    kind: int  # JSON_KIND or BYTES_KIND
    data: bytes  # uncompressed
    etag: str
    expires_at: float | None
    strategy: str
    tags: list[str]

    def pack(self, compress: bool | None) -> list[Any]:
        data, kind = self.data, self.kind
        if compress or (compress is None and len(data) >= COMPRESS_FROM):
            packed = _zc.compress(data)
            if compress or len(packed) < len(data):
                data, kind = packed, kind | COMPRESSED
        return [kind, data, self.etag, self.expires_at, self.strategy, self.tags]

    @classmethod
    def unpack(cls, raw: Any) -> Stored | None:
        """The stored form read back; None for anything the service did not write (a foreign value)."""
        if not isinstance(raw, list) or len(raw) != 6 or not isinstance(raw[1], bytes):
            return None
        kind, data, etag, expires_at, strategy, tags = raw
        if not isinstance(kind, int) or not isinstance(etag, str):
            return None
        if kind & COMPRESSED:
            data = _zd.decompress(data)
        return cls(kind & ~COMPRESSED, data, etag, expires_at, str(strategy), list(tags))

    @classmethod
    def new(cls, kind: int, data: bytes, ttl: float | None, strategy: str, tags: list[str]) -> Stored:
        expires = None if ttl is None else time.time() + ttl
        return cls(kind, data, etag_of(kind, data), expires, strategy, tags)

    def max_age(self) -> int:
        if self.expires_at is None:
            return NO_EXPIRY_MAX_AGE
        return max(0, int(self.expires_at - time.time()))

    def headers(self) -> list[tuple[bytes, bytes]]:
        """ETag and Cache-Control for the value's strategy (and the CDN's surrogate keys for `cdn`)."""
        etag = (b"etag", self.etag.encode())
        if self.strategy == "browser":
            return [etag, (b"cache-control", b"private, max-age=%d" % self.max_age())]
        if self.strategy == "cdn":
            age = self.max_age()
            headers = [
                etag,
                (b"cache-control", b"public, max-age=0, s-maxage=%d" % age),
                (b"surrogate-control", b"max-age=%d" % age),
            ]
            if self.tags:
                headers.append((b"surrogate-key", " ".join(self.tags).encode()))
                headers.append((b"cache-tag", ",".join(self.tags).encode()))
            return headers
        return [etag, (b"cache-control", b"private, no-cache")]


def etag_matches(if_none_match: bytes | None, etag: str) -> bool:
    """RFC 9110 weak comparison of an If-None-Match list with the current ETag (`*` matches any)."""
    if if_none_match is None:
        return False
    wanted = etag.encode()
    for item in if_none_match.split(b","):
        item = item.strip()
        if item == b"*" or item.removeprefix(b"W/") == wanted:
            return True
    return False
