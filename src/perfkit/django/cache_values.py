"""How `PerfkitCache` stores Django's values: plain scalars as msgpack, everything else as signed pickle.

Django's cache framework stores arbitrary Python objects (model instances, responses, tuples), which
only pickle round-trips. perfkit never unpickles bytes it did not sign: `DjangoSerializer` puts an
HMAC-SHA256 tag, bound to the cache's namespace and the stored key, in front of every pickle and
checks it before `pickle.loads` sees a byte (a value moved to another key, or written by anyone without
the key, is a miss). str, bytes, int, float, bool and None are written as msgpack instead, which
cannot run code, needs no tag and is several times faster:

    [0x00][msgpack]                                  a plain scalar
    [0x01][HMAC-SHA256(key, len(context) context pickle)][pickle]   anything else

Objects are pickled by `prepare()` in the thread that calls the cache, as Django's backends do: a
QuerySet evaluates there, on that thread's database connection, and pickling errors are raised there.
The in-process tier keeps the pickle (`Pickled`) and `unwrap()` returns a fresh copy on each read, like
Django's LocMemCache, so a caller mutating what it read never changes the cached value.

The signing key is `OPTIONS["pickle_key"]`, else derived from `settings.SECRET_KEY` with Django's
`salted_hmac`, so a deployment has one without configuring it. Rotating SECRET_KEY turns the pickled
values into misses (refused, never unpickled), not errors.
"""

from __future__ import annotations

import hashlib
import hmac
import pickle
import struct
from typing import Any, Final

import msgspec

from perfkit.errors import SerializationError
from perfkit.serialization import SignedPickleSerializer

__all__ = ["DjangoSerializer", "Pickled", "derive_pickle_key", "prepare", "unwrap"]

PLAIN: Final = b"\x00"
PICKLED: Final = b"\x01"
_TAG: Final = 32
_LEN = struct.Struct(">I")
_SCALARS: Final = frozenset({str, bytes, float, bool, type(None)})
_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1  # what msgpack holds; larger ints are pickled


class Pickled:
    """A value pickled by `prepare()` in the caller's thread (what the in-process tier keeps)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


def _plain(value: Any) -> bool:
    kind = type(value)
    return kind in _SCALARS or (kind is int and _INT64_MIN <= value <= _UINT64_MAX)


def prepare(value: Any) -> Any:
    """`value` ready to hand to perfkit: a plain scalar as is, anything else pickled here and now."""
    if _plain(value) or type(value) is Pickled:
        return value
    return Pickled(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))


def unwrap(value: Any) -> Any:
    """What a read returns: a `Pickled` value unpickled (a fresh copy), anything else as is."""
    if type(value) is Pickled:
        return pickle.loads(value.data)  # noqa: S301 - pickled by prepare() in this process, never read from storage
    return value


def derive_pickle_key(secret_key: str | bytes) -> bytes:
    """The HMAC key for pickled values, derived from Django's SECRET_KEY (never the SECRET_KEY itself)."""
    from django.utils.crypto import salted_hmac

    mac = salted_hmac("perfkit.django.cache", "pickle_key", secret=secret_key, algorithm="sha256")
    return bytes(mac.digest())


class DjangoSerializer(SignedPickleSerializer):
    """Signed pickle for objects, msgpack for plain scalars (see the module docstring). A subclass of
    perfkit's signed pickle so the codec hands it the context (namespace + key) to bind."""

    name = "pickle"  # recorded by the codec: a cache with another serializer refuses these values

    def __init__(self, key: bytes | str) -> None:
        super().__init__(key)  # checks the key's length
        self._django_key = key.encode() if isinstance(key, str) else key
        self._encode = msgspec.msgpack.Encoder().encode
        self._decode = msgspec.msgpack.Decoder().decode

    def _sign(self, body: bytes, context: bytes) -> bytes:
        mac = hmac.new(self._django_key, _LEN.pack(len(context)) + context, hashlib.sha256)
        mac.update(body)
        return mac.digest()

    def dumps(self, value: Any, context: bytes = b"") -> bytes:
        if _plain(value):
            return PLAIN + self._encode(value)
        body = value.data if type(value) is Pickled else pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        return PICKLED + self._sign(body, context) + body

    def loads(self, data: bytes, context: bytes = b"") -> Any:
        mark = data[:1]
        if mark == PLAIN:
            return self._decode(memoryview(data)[1:])
        if mark != PICKLED:
            raise SerializationError("cached value was not written by perfkit.django.cache (unknown marker)")
        tag, body = data[1 : 1 + _TAG], data[1 + _TAG :]
        if not hmac.compare_digest(tag, self._sign(body, context)):
            raise SerializationError(
                "refusing to unpickle a cached value whose HMAC does not match (another pickle_key or "
                "SECRET_KEY, tampered, or moved from another key)"
            )
        return pickle.loads(body)  # noqa: S301 - the HMAC over context and body was verified above
