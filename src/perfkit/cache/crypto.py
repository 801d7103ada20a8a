"""Authenticated encryption of cached values (AES-GCM from `cryptography`) with key rotation.

The first key encrypts; every key decrypts, found by a 4-byte key id, so keys rotate without a flush:
put the new key first, keep the old one until its values have expired, then drop it. The stored key
is bound as associated data, so a ciphertext copied under another key does not decrypt.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from perfkit.errors import ConfigurationError, SerializationError

_NONCE = 12
_KID = 4


def generate_key() -> str:
    """A new random 256-bit key, URL-safe base64, fit for `Cache(encryption_keys=[...])`."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def _parse_key(index: int, key: str | bytes) -> bytes:
    if isinstance(key, str):
        try:
            raw = base64.urlsafe_b64decode(key + "=" * (-len(key) % 4))
        except (binascii.Error, ValueError):
            raise ConfigurationError(
                "encryption_keys",
                f"key #{index} is not URL-safe base64 (make one with perfkit.cache.generate_key())",
            ) from None
    elif isinstance(key, bytes):
        raw = key
    else:
        raise ConfigurationError(
            "encryption_keys", f"key #{index} must be str or bytes, not {type(key).__name__}"
        )
    if len(raw) not in (16, 24, 32):
        raise ConfigurationError(
            "encryption_keys", f"key #{index} is {len(raw)} bytes; AES-GCM needs 16, 24 or 32 bytes"
        )
    return raw


class Encryptor:
    """Encrypts with the newest key and decrypts with any configured one."""

    def __init__(self, keys: Sequence[str | bytes]) -> None:
        if isinstance(keys, str | bytes) or not keys:
            raise ConfigurationError("encryption_keys", "must be a non-empty list of keys, newest first")
        self._ciphers: dict[bytes, AESGCM] = {}
        self._current = b""
        for index, key in enumerate(keys):
            raw = _parse_key(index, key)
            kid = hashlib.sha256(raw).digest()[:_KID]
            self._ciphers.setdefault(kid, AESGCM(raw))
            if index == 0:
                self._current = kid

    def encrypt(self, data: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        return self._current + nonce + self._ciphers[self._current].encrypt(nonce, data, aad)

    def decrypt(self, blob: bytes, aad: bytes) -> bytes:
        kid, nonce, body = blob[:_KID], blob[_KID : _KID + _NONCE], blob[_KID + _NONCE :]
        cipher = self._ciphers.get(kid)
        if cipher is None:
            raise SerializationError("cached value was encrypted with a key that is no longer configured")
        try:
            return cipher.decrypt(nonce, body, aad)
        except InvalidTag:
            raise SerializationError(
                "cached value failed authentication (tampered, or moved between keys)"
            ) from None
