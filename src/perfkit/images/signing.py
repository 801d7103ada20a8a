"""Signed URLs: HMAC-SHA256 over `<options>/<path>`, several keys so that they can be rotated.

The first key signs; every key verifies, so a new key is put first, the old one kept until the URLs it
signed have left the caches, then removed (imgproxy's scheme). The signature is the whole 32-byte MAC in
URL-safe base64 without padding (43 characters), compared in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence

from perfkit.errors import ConfigurationError
from perfkit.images.errors import BadSignatureError

__all__ = ["UNSIGNED", "Signer"]

UNSIGNED = "_"  # the signature segment of a URL when the service is explicitly opened (`signed=False`)
_MIN_KEY = 16


class Signer:
    """Signs with the first of `keys`, verifies with any of them."""

    def __init__(self, keys: Sequence[str | bytes]) -> None:
        if isinstance(keys, str | bytes) or not keys:
            raise ConfigurationError("keys", "a non-empty list of secret keys (the first one signs)")
        self._keys = [k.encode() if isinstance(k, str) else bytes(k) for k in keys]
        short = [i for i, k in enumerate(self._keys) if len(k) < _MIN_KEY]
        if short:
            raise ConfigurationError("keys", f"key #{short[0]} is shorter than {_MIN_KEY} bytes")

    def sign(self, payload: str) -> str:
        return _mac(self._keys[0], payload)

    def verify(self, signature: str, payload: str) -> None:
        """Raise BadSignatureError unless `signature` is some key's MAC of `payload`."""
        if len(signature) != 43:
            raise BadSignatureError("bad signature: not a signed URL (43 characters of base64url expected)")
        ok = False
        for key in self._keys:  # every key, so the time does not tell which one matched
            ok |= hmac.compare_digest(_mac(key, payload), signature)
        if not ok:
            raise BadSignatureError("bad signature: the URL was not signed by any of the service's keys")


def _mac(key: bytes, payload: str) -> str:
    digest = hmac.new(key, payload.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
