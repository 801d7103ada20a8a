"""The wire protocol (docs/realtime.md, version 1): channel names, the frames the hub sends, the
requests it reads, the SSE position, error and close codes. JSON through msgspec; a message's frame
is built once per process (by the broker) and reused for every connection."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NamedTuple
from urllib.parse import quote, unquote

import msgspec

from perfkit.errors import InvalidArgumentError, SerializationError

VERSION = 1
CHANNEL = re.compile(r"^[A-Za-z0-9:_\-.@/]{1,200}$")
EPOCH = re.compile(r"^[0-9a-f]{1,32}$")

# error codes (an `error` frame; the connection stays open)
BAD_REQUEST = "bad_request"
UNKNOWN_TYPE = "unknown_type"
FORBIDDEN = "forbidden"
RATE_LIMITED = "rate_limited"
NOT_SUBSCRIBED = "not_subscribed"
TOO_MANY_CHANNELS = "too_many_channels"
UNAVAILABLE = "unavailable"

# resync reasons
EPOCH_CHANGED = "epoch"
OUT_OF_HISTORY = "history"
DROPPED = "dropped"

# WebSocket close codes: (code, reason text)
CLOSE_UNAUTHORIZED = (4401, "unauthorized")
CLOSE_BAD_REQUEST = (4400, "bad_request")
CLOSE_TOO_BIG = (1009, "message too big")
CLOSE_HEARTBEAT = (4408, "heartbeat_timeout")
CLOSE_SLOW = (4409, "slow_consumer")
CLOSE_RESTART = (1012, "restart")

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


class Entry(NamedTuple):
    """One message of a channel as the brokers hand it over: its frame is the `message` JSON text."""

    epoch: str
    offset: int
    at: float  # publish time, seconds since the epoch (the broker's clock)
    frame: str


class Position(NamedTuple):
    """Where a client is in a channel: the last offset it received, under `epoch`."""

    epoch: str
    offset: int


Mark = Position | Entry  # anything with the `epoch` and `offset` of a place in a channel


def check_channel(channel: object) -> str:
    """The channel name, or InvalidArgumentError naming what a channel may be."""
    if not isinstance(channel, str) or not CHANNEL.match(channel):
        raise InvalidArgumentError(
            f"channel {channel!r} is not 1-200 characters of letters, digits and ':_-.@/'"
        )
    return channel


def encode(value: Any) -> bytes:
    """JSON bytes of `value`; SerializationError (a TypeError) naming the type when it has no JSON form."""
    try:
        return _encode(value)
    except (TypeError, msgspec.EncodeError) as exc:
        raise SerializationError(f"cannot send {type(value).__name__} as JSON: {exc}") from exc


def decode(raw: str | bytes) -> Any:
    return _decode(raw)


def message_frame(channel: str, epoch: str, offset: int, data_json: str) -> str:
    """The `message` frame, as the Redis script builds it too (same field order)."""
    name = _encode(channel).decode()
    return f'{{"type":"message","channel":{name},"epoch":"{epoch}","offset":{offset},"data":{data_json}}}'


def batch_frame(frames: list[str]) -> str:
    """Messages coalesced in one frame; their texts are joined, not encoded again."""
    return '{"type":"batch","messages":[' + ",".join(frames) + "]}"


def frame(kind: str, **fields: Any) -> str:
    """A control frame (`welcome`, `subscribed`, `resync`, `ping`, `error`, ...); None fields left out."""
    body = {"type": kind, **{k: v for k, v in fields.items() if v is not None}}
    return _encode(body).decode()


def error(code: str, message: str, request_id: Any = None, **extra: Any) -> str:
    return frame("error", id=request_id, code=code, message=message, **extra)


def resync(channel: str, position: Position, reason: str) -> str:
    return frame("resync", channel=channel, epoch=position.epoch, offset=position.offset, reason=reason)


def encode_position(positions: Mapping[str, Mark]) -> str:
    """The SSE event id: `channel=epoch.offset` pairs, percent-encoded, joined by `&`."""
    return "&".join(f"{quote(c, safe='')}={p.epoch}.{p.offset}" for c, p in positions.items())


def parse_position(text: str) -> dict[str, Position]:
    """The positions of an SSE `Last-Event-ID` (or `?resume=`); malformed pairs are skipped (a client
    resuming from a damaged id gets a fresh subscription, i.e. a resync, not an error)."""
    found: dict[str, Position] = {}
    for pair in text.split("&"):
        name, _, value = pair.partition("=")
        epoch, _, offset = value.partition(".")
        channel = unquote(name)
        if CHANNEL.match(channel) and EPOCH.match(epoch) and offset.isdigit():
            found[channel] = Position(epoch, int(offset))
    return found
