"""Value serializers shared by the cache and the job queue.

msgpack through msgspec is the default: it is several times faster than pickle, it round-trips the
types web code caches (dicts, lists, str, bytes, numbers, datetimes, UUIDs, msgspec Structs) and it
cannot execute code when it reads bytes written by someone else. Pickle is available only when asked
for, and then every payload carries an HMAC-SHA256 tag checked before `pickle.loads` sees a byte.
The cache signs with a `context` (its namespace and the stored key), so a signed value copied under
another key or namespace is refused too.
"""

from __future__ import annotations

import hashlib
import hmac
import pickle
import struct
from collections.abc import Callable
from typing import Any, Protocol

import msgspec

from perfkit.errors import ConfigurationError, SerializationError


class Serializer(Protocol):
    """Turns values into bytes and back; `name` is recorded so readers can refuse a mismatch."""

    name: str

    def dumps(self, value: Any) -> bytes: ...

    def loads(self, data: bytes) -> Any: ...


class MsgpackSerializer:
    name = "msgpack"

    def __init__(self) -> None:
        # bound methods of one reusable encoder/decoder: no per-call construction, no extra frame
        self.dumps: Callable[[Any], bytes] = msgspec.msgpack.Encoder().encode
        self.loads: Callable[[bytes], Any] = msgspec.msgpack.Decoder().decode


class JsonSerializer:
    name = "json"

    def __init__(self) -> None:
        # bound methods of one reusable encoder/decoder: no per-call construction, no extra frame
        self.dumps: Callable[[Any], bytes] = msgspec.json.Encoder().encode
        self.loads: Callable[[bytes], Any] = msgspec.json.Decoder().decode


_BOUND = b"perfkit.pickle.bound.v1\x00"  # domain separator: a bound tag never equals an unbound one
_LEN = struct.Struct(">I")


class SignedPickleSerializer:
    """Pickle for trusted deployments, with an HMAC tag so bytes an attacker wrote are refused.

    With a non-empty `context` the tag also covers it (length-prefixed, after a domain separator): the
    cache passes its namespace and stored key, so a payload is only accepted where it was written.
    """

    name = "pickle"
    _TAG = 32

    def __init__(self, key: bytes | str) -> None:
        raw = key.encode() if isinstance(key, str) else key
        if len(raw) < 16:
            raise ConfigurationError("pickle_key", "must be at least 16 bytes long")
        self._key = raw

    def _tag(self, body: bytes, context: bytes) -> bytes:
        mac = hmac.new(self._key, digestmod=hashlib.sha256)
        if context:
            mac.update(_BOUND + _LEN.pack(len(context)) + context)
        mac.update(body)
        return mac.digest()

    def dumps(self, value: Any, context: bytes = b"") -> bytes:
        data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        return self._tag(data, context) + data

    def loads(self, data: bytes, context: bytes = b"") -> Any:
        tag, body = data[: self._TAG], data[self._TAG :]
        if not hmac.compare_digest(tag, self._tag(body, context)):
            raise SerializationError(
                "refusing to unpickle a payload whose HMAC signature does not match "
                "(another pickle_key, tampered, moved from another key, or signed by an older perfkit)"
            )
        return pickle.loads(body)  # noqa: S301 - the payload's HMAC was verified above


def get_serializer(
    name: str | Serializer = "msgpack", *, pickle_key: bytes | str | None = None
) -> Serializer:
    """The serializer for a name; pickle requires `pickle_key` (it is never enabled implicitly)."""
    if not isinstance(name, str):
        return name
    if name == "msgpack":
        return MsgpackSerializer()
    if name == "json":
        return JsonSerializer()
    if name == "pickle":
        if pickle_key is None:
            raise ConfigurationError(
                "serializer",
                "'pickle' needs pickle_key= (payloads are HMAC-signed; unsigned pickle is unsafe)",
            )
        return SignedPickleSerializer(pickle_key)
    raise ConfigurationError("serializer", f"{name!r} is not one of ['msgpack', 'json', 'pickle']")
